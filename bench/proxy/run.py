#!/usr/bin/env python3
"""The reverse proxy benchmark: our ReverseProxy (NewSingleHost on a minimal Kestrel host), YARP 2.1.0, haproxy and
nginx as proxies in front of one nginx upstream serving 1 KiB and 64 KiB static files over keep-alive. Each proxy is
loaded by wrk (2 threads, 64 connections) after a warm-up, one proxy at a time, in interleaved rounds (the order flips
each round). Per proxy and size: requests/s, p50/p99 latency, the proxy's CPU microseconds per request (user + system
of the proxy's processes over the measured window, from /proc), its peak RSS and the errors wrk saw.

    bench/proxy/run.py                          # 3 rounds, about 8 minutes
    bench/proxy/run.py --rounds 1 --proxies httputil,yarp --sizes 1k
    bench/proxy/run.py --proxies httputil,httputil+telemetry,yarp   # the cost of a full telemetry listener
    bench/proxy/run.py --proxies httputil,httputil-body-idle,yarp   # the cost of ResponseBodyIdleTimeout (off in the second)

Needs nginx, haproxy and wrk (apt-get install nginx-light haproxy wrk). YARP is restored from NuGet and built
outside the solution (bench/proxy/yarp, see ../shared/TOOLCHAIN.md for its System.IO.Hashing workaround).
"""
import argparse, importlib.util, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "bench", "proxy")
_spec = importlib.util.spec_from_file_location("loadrun", os.path.join(ROOT, "bench", "load", "run.py"))
load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load)

LOAD_DLL = load.BIN
PROXIES = ["httputil", "yarp", "haproxy", "nginx"]


def tree(pid):
    """pid and every process below it."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(pid):
    total = 0.0
    for p in tree(pid):
        try:
            total += load.proc_cpu_seconds(p)
        except OSError:
            pass
    return total


def tree_peak_rss_mb(pid):
    total = 0
    for p in tree(pid):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def start_proxy(kind, port, upstream_port, workdir, yarp_dll):
    upstream = f"http://127.0.0.1:{upstream_port}/"
    if kind in ("httputil", "httputil+telemetry", "httputil-body-idle"):
        cmd = ["dotnet", LOAD_DLL, "proxy", "--upstream", upstream, "--port", str(port)]
        if kind == "httputil+telemetry":
            cmd += ["--telemetry", "full"]
        if kind == "httputil-body-idle":
            cmd += ["--body-idle", "none"]
    elif kind == "yarp":
        cmd = ["dotnet", yarp_dll, "--upstream", upstream, "--port", str(port)]
    elif kind == "haproxy":
        conf = os.path.join(workdir, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(f"""global
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend front
    bind 127.0.0.1:{port}
    default_backend up
backend up
    server s1 127.0.0.1:{upstream_port}
""")
        cmd = ["haproxy", "-db", "-f", conf]
    else:
        d = os.path.join(workdir, "nginx-proxy")
        conf = load.write_nginx_conf(d, 2, f"""    upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 128; keepalive_requests 100000000; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}""")
        cmd = ["nginx", "-c", conf, "-p", d]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    load.wait_listening(port, proc, kind)
    return proc


def check(port, size):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/{size}", timeout=10).read()
    if len(body) != load.SIZES[size]:
        sys.exit(f"the proxy on {port} returned {len(body)} bytes for /{size}")


def measure(proc, port, size, warmup, duration):
    url = f"http://127.0.0.1:{port}/{size}"
    subprocess.run(["wrk", "-t", "2", "-c", "64", "-d", f"{int(round(warmup))}s", url], capture_output=True, timeout=warmup + 60)
    cpu0 = tree_cpu(proc.pid)
    out = subprocess.run(["wrk", "--latency", "-t", "2", "-c", "64", "-d", f"{int(round(duration))}s", url],
                         capture_output=True, text=True, timeout=duration + 60)
    cpu = tree_cpu(proc.pid) - cpu0
    requests, p50, p99 = load.parse_wrk(out.stdout)
    errors = 0
    for line in out.stdout.splitlines():
        if "Non-2xx" in line:
            errors += int(line.split()[-1])
        if "Socket errors" in line:
            errors += sum(int(x.rstrip(",")) for x in line.split() if x.rstrip(",").isdigit())
    return {"requests": requests, "rps": requests / duration, "p50_ms": p50, "p99_ms": p99,
            "cpu_us_per_req": cpu * 1e6 / max(requests, 1), "errors": errors}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--sizes", default="1k,64k")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json", help="also write every measurement to this file")
    a = ap.parse_args()
    proxies = a.proxies.split(",")
    sizes = a.sizes.split(",")
    for tool in ["nginx", "wrk"] + (["haproxy"] if "haproxy" in proxies else []):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y nginx-light haproxy wrk")
    workdir = tempfile.mkdtemp(prefix="httputil-proxy-bench-")
    os.chmod(workdir, 0o755)  # the nginx workers run as their own user
    yarp_dll = os.path.join(workdir, "yarp", "YarpPeer.dll")
    if not a.no_build:
        subprocess.run(["dotnet", "build", os.path.join(ROOT, "bench", "load", "HttpUtil.Load.csproj"), "-c", "Release", "-nologo", "-v", "q"],
                       check=True)
    if "yarp" in proxies:
        subprocess.run(["dotnet", "build", os.path.join(HERE, "yarp", "YarpPeer.csproj"), "-c", "Release", "-nologo", "-v", "q",
                        "-o", os.path.dirname(yarp_dll)], check=True)
    upstream_port = load.free_port()
    upstream = load.start_nginx(os.path.join(workdir, "upstream"), upstream_port)
    print(f"# proxy benchmark {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average before: {' '.join(load.load_average())}, "
          f"{os.cpu_count()} cores, wrk -t2 -c64, warm-up {a.warmup:g} s, window {a.duration:g} s, {a.rounds} rounds", flush=True)
    results = []
    try:
        for r in range(a.rounds):
            order = proxies if r % 2 == 0 else list(reversed(proxies))
            for kind in order:
                port = load.free_port()
                proc = start_proxy(kind, port, upstream_port, workdir, yarp_dll)
                try:
                    for size in sizes:
                        check(port, size)
                        m = measure(proc, port, size, a.warmup, a.duration)
                        m.update(proxy=kind, size=size, round=r)
                        results.append(m)
                        print(f"  round {r + 1} {kind:8} {size:>3}: {m['rps']:8.0f} req/s  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms  "
                              f"{m['cpu_us_per_req']:6.1f} us CPU/req  errors {m['errors']}", flush=True)
                    peak = tree_peak_rss_mb(proc.pid)
                    for m in results:
                        if m["proxy"] == kind and m["round"] == r:
                            m["peak_rss_mb"] = peak
                finally:
                    proc.kill()
                    proc.wait()
                    if kind == "nginx":
                        subprocess.run(["pkill", "-f", os.path.join(workdir, "nginx-proxy")], capture_output=True)
    finally:
        upstream.kill()
        upstream.wait()
    print(f"\nload average after: {' '.join(load.load_average())}\n")
    print("| proxy | size | requests/s | p50 ms | p99 ms | CPU µs/request | vs YARP CPU (per-round range) | peak RSS MB | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for size in sizes:
        for kind in proxies:
            ms = [m for m in results if m["proxy"] == kind and m["size"] == size]
            if not ms:
                continue
            ratios = []
            for m in ms:
                y = [x for x in results if x["proxy"] == "yarp" and x["size"] == size and x["round"] == m["round"]]
                if y:
                    ratios.append(m["cpu_us_per_req"] / y[0]["cpu_us_per_req"])
            ratio = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-"
            print(f"| {kind} | {size} | {load.med([m['rps'] for m in ms]):,.0f} | {load.med([m['p50_ms'] for m in ms]):.2f} | "
                  f"{load.med([m['p99_ms'] for m in ms]):.2f} | {load.med([m['cpu_us_per_req'] for m in ms]):.1f} | {ratio} | "
                  f"{max(m.get('peak_rss_mb', 0) for m in ms):.0f} | {sum(m['errors'] for m in ms)} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
