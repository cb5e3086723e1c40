#!/usr/bin/env python3
"""The soak: millions of requests through ReverseProxy (NewSingleHost on Kestrel, as bench/proxy hosts it) to a local
nginx, over 64 keep-alive connections (wrk) plus new connections at a fixed rate (a small Go client, each connection
one request with Connection: close). The proxy samples itself every 10 s: resident memory, managed heap, sockets
open, and upstream connections its Transport keeps idle. Prints the curve and whether memory plateaued and the idle
upstream connections stayed within MaxIdleConnsPerHost (256 for the default Transport).

    bench/soak/run.py                               # 5 million keep-alive requests + 1,000 new connections/s
    bench/soak/run.py --requests 500000 --rate 200  # a short one

Needs nginx, wrk and go (apt-get install nginx-light wrk golang-go). Not part of CI.
"""
import argparse, importlib.util, json, os, shutil, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "bench", "soak")
_spec = importlib.util.spec_from_file_location("loadrun", os.path.join(ROOT, "bench", "load", "run.py"))
load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load)
MAX_IDLE = 256  # ReverseProxy.DefaultTransport's MaxIdleConnsPerHost


def raise_priority():
    """In the child: nice -5 when the user may (root), else unchanged."""
    try:
        os.nice(-5)
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=5_000_000, help="keep-alive requests to send in all")
    ap.add_argument("--rate", type=int, default=1000, help="new connections per second beside them")
    ap.add_argument("--segment", type=int, default=60, help="seconds per wrk run")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    for tool in ("nginx", "wrk", "go"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y nginx-light wrk golang-go")
    if not a.no_build:
        subprocess.run(["dotnet", "build", os.path.join(ROOT, "bench", "load", "HttpUtil.Load.csproj"), "-c", "Release", "-nologo", "-v", "q"], check=True)
    workdir = tempfile.mkdtemp(prefix="httputil-soak-")
    os.chmod(workdir, 0o755)  # nginx's worker (another user) must reach the files below it
    newconns = os.path.join(workdir, "newconns")
    env = dict(os.environ, GOCACHE=os.path.join(tempfile.gettempdir(), "httputil-soak-gocache"), GOFLAGS="-mod=mod")
    subprocess.run(["go", "build", "-o", newconns, "."], cwd=os.path.join(HERE, "newconns"), env=env, check=True)

    upstream_port, proxy_port = load.free_port(), load.free_port()
    nginx = load.start_nginx(os.path.join(workdir, "nginx"), upstream_port)
    proxy = subprocess.Popen(["dotnet", load.BIN, "proxy", "--upstream", f"http://127.0.0.1:{upstream_port}/", "--port", str(proxy_port),
                              "--stats", "10"], stdout=subprocess.PIPE, text=True)
    samples = []

    def collect():
        for line in proxy.stdout:
            if line.startswith("{"):
                s = json.loads(line)
                samples.append(s)
                print(f"  {s['seconds']:7.0f} s  rss {s['rss_mb']:7.1f} MB  heap {s['heap_mb']:6.1f} MB  sockets {s['sockets']:5d}  "
                      f"idle upstream {s['idle_upstream']:4d}", flush=True)

    while proxy.stdout.readline().strip() != "ready":
        pass
    threading.Thread(target=collect, daemon=True).start()
    url = f"http://127.0.0.1:{proxy_port}/1k"
    print(f"# soak {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {a.requests:,} keep-alive requests (wrk -t1 -c64) + "
          f"{a.rate} new connections/s, load average {' '.join(load.load_average())}, {os.cpu_count()} cores", flush=True)
    done, errors, fresh, fresh_errors, started = 0, 0, 0, 0, time.time()
    try:
        while done < a.requests:
            # The new-connection client runs ahead of wrk for the CPU (a higher priority where allowed): it must keep
            # its rate, while wrk only has to reach its total.
            side = subprocess.Popen([newconns, "-addr", f"127.0.0.1:{proxy_port}", "-rate", str(a.rate), "-duration", f"{a.segment}s"],
                                    stdout=subprocess.PIPE, text=True, preexec_fn=raise_priority)
            m = load.run_wrk(url, 64, a.segment)
            out = json.loads(side.communicate(timeout=a.segment + 60)[0])
            done += m["requests"]
            errors += m["errors"]
            fresh += out["connections"]
            fresh_errors += out["errors"]
            print(f"  segment: {m['requests']:,} keep-alive requests ({m['rps']:.0f}/s), {out['connections']:,} new connections {out.get('first_error') or ''}, "
                  f"errors {m['errors']}/{out['errors']}; total {done:,}", flush=True)
        time.sleep(12)  # one more sample after the load stops
    finally:
        proxy.terminate()
        proxy.wait()
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    minutes = (time.time() - started) / 60
    print(f"\n{done:,} keep-alive requests and {fresh:,} new connections in {minutes:.1f} min; errors: wrk {errors}, new connections {fresh_errors}; "
          f"load average after {' '.join(load.load_average())}\n")
    print("| seconds | RSS MB | managed heap MB | heap committed MB | gen2 GCs | sockets | idle upstream connections |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in samples:
        print(f"| {s['seconds']:.0f} | {s['rss_mb']:.1f} | {s['heap_mb']:.1f} | {s['heap_committed_mb']:.1f} | {s['gen2']} | {s['sockets']} | {s['idle_upstream']} |")
    loaded = samples[:-1] if len(samples) > 3 else samples
    third = max(1, len(loaded) // 3)
    mid = [s["rss_mb"] for s in loaded[third:2 * third]]
    last = [s["rss_mb"] for s in loaded[2 * third:]]
    if mid and last:
        print(f"\nRSS: middle third peak {max(mid):.1f} MB, last third peak {max(last):.1f} MB "
              f"({'plateau' if max(last) <= max(mid) * 1.05 else 'still growing'}); "
              f"idle upstream connections peak {max(s['idle_upstream'] for s in samples)} (MaxIdleConnsPerHost {MAX_IDLE})")


if __name__ == "__main__":
    main()
