#!/usr/bin/env python3
"""The trace benchmark: does `httputil trace` measure the network, and how long does the tool take?

For a GET of 1 KiB from a local nginx, five runs each, interleaved: the total that `httputil trace --json` reports,
the same with `--no-warmup` (what the phases would say if the JIT ran inside them), curl's `%{time_total}`, and the
start-to-exit wall time of the httputil process. The tool is the one users install: packed with `dotnet pack`
and installed with `dotnet tool install --tool-path`.

    bench/trace/run.py [--runs 5] [--no-build]

Needs nginx and curl (apt-get install nginx-light curl).
"""
import argparse, importlib.util, json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("loadrun", os.path.join(ROOT, "bench", "load", "run.py"))
load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load)


def install_tool(workdir, build):
    artifacts = os.path.join(ROOT, "artifacts")
    if build or not os.path.exists(os.path.join(artifacts, "HttpUtil.Tool.0.1.0.nupkg")):
        subprocess.run(["dotnet", "fsi", "build.fsx", "--", "Pack"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    tools = os.path.join(workdir, "tools")
    env = dict(os.environ, NUGET_PACKAGES=os.path.join(workdir, "packages"))
    subprocess.run(["dotnet", "tool", "install", "--tool-path", tools, "--add-source", artifacts, "HttpUtil.Tool", "--version", "0.1.0"],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    return os.path.join(tools, "httputil")


def trace_total(tool, url, warm):
    args = [tool, "trace", "--json", url] + ([] if warm else ["--no-warmup"])
    start = time.perf_counter()
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    wall = (time.perf_counter() - start) * 1000
    o = json.loads(out)
    return o["total_ms"], wall, {p["name"]: p["ms"] for p in o["phases"]}


def curl_total(url):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", url], check=True, capture_output=True, text=True).stdout
    return float(out) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-build", action="store_true", help="use the packages already in artifacts/")
    args = ap.parse_args()
    for tool in ("nginx", "curl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y nginx-light curl")
    workdir = tempfile.mkdtemp(prefix="httputil-trace-bench-")
    try:
        tool = install_tool(workdir, not args.no_build)
        port = load.free_port()
        nginx = load.start_nginx(os.path.join(workdir, "nginx"), port)
        url = f"http://127.0.0.1:{port}/1k"
        try:
            # One untimed run of each, so that files and the page cache are warm.
            trace_total(tool, url, True)
            curl_total(url)
            rows = []
            for i in range(args.runs):
                warm, wall, phases = trace_total(tool, url, True)
                cold, cold_wall, _ = trace_total(tool, url, False)
                rows.append(dict(run=i + 1, curl=curl_total(url), trace=warm, wall=wall, cold=cold, cold_wall=cold_wall, phases=phases))
        finally:
            nginx.terminate()
            nginx.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"machine: {os.cpu_count()} cores, load average {load.load_average()[0]}, {time.strftime('%Y-%m-%d')}")
    print()
    print("| run | curl time_total | httputil trace total | difference | httputil wall (start to exit) | trace --no-warmup total | --no-warmup wall |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['run']} | {r['curl']:.3f} ms | {r['trace']:.3f} ms | {r['trace'] - r['curl']:+.3f} ms | {r['wall']:.0f} ms | {r['cold']:.1f} ms | {r['cold_wall']:.0f} ms |")
    med = lambda k: statistics.median(r[k] for r in rows)
    print(f"| median | {med('curl'):.3f} ms | {med('trace'):.3f} ms | {med('trace') - med('curl'):+.3f} ms | {med('wall'):.0f} ms | {med('cold'):.1f} ms | {med('cold_wall'):.0f} ms |")
    print()
    names = list(rows[0]["phases"].keys())
    print("median phases of the warmed trace: " + ", ".join(f"{n} {statistics.median(r['phases'][n] for r in rows):.3f} ms" for n in names))


if __name__ == "__main__":
    main()
