#!/usr/bin/env python3
"""The load benchmark: HttpClient over our Transport against HttpClient over SocketsHttpHandler (and Go's
net/http client and wrk as outside anchors) loading a local nginx; then a server on ServerConn against a Kestrel
app, each loaded by wrk. Interleaved rounds; medians and the per-round ratios are printed as Markdown tables.

    bench/load/run.py                      # everything (about 15 minutes)
    bench/load/run.py --rounds 1 --cases 1k:64 --no-anchors --no-server

Needs nginx and wrk (apt-get install nginx-light wrk); Go (golang-go) for the Go anchor, skipped when absent.
CPU time is the user + system time of the client (or server) process as the kernel counts it; the clients
measure only the window after their warm-up; the server's is read from /proc/PID/stat around a wrk run that
follows a warm-up run.
"""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOAD = os.path.join(ROOT, "bench", "load")
BIN = os.path.join(LOAD, "bin", "Release", "net10.0", "HttpUtil.Load.dll")
SIZES = {"1k": 1024, "64k": 64 * 1024}
DEFAULT_CASES = ["1k:1", "1k:16", "1k:64", "1k:256", "64k:1", "64k:16", "64k:64", "64k:256"]
TICK = os.sysconf("SC_CLK_TCK")
BEFORE = None  # --before: HttpUtil.Load.dll built from an earlier commit, measured as the kind "before"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_average():
    return open("/proc/loadavg").read().split()[:3]


def write_nginx_conf(d, workers, body):
    """Writes d/nginx.conf for a benchmark (foreground, no access log, temp files under d/tmp, keep-alive requests
    without a limit) with `body` inside its http block; returns its path."""
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    keepalive_requests 100000000;
{body}
}}
""")
    return conf


def start_nginx(workdir, port):
    os.makedirs(os.path.join(workdir, "www"), exist_ok=True)
    os.chmod(workdir, 0o755)  # nginx's worker runs as its own user and must read the files
    for name, size in SIZES.items():
        with open(os.path.join(workdir, "www", name), "wb") as f:
            f.write(b"x" * size)
    conf = write_nginx_conf(workdir, 1, f"""    keepalive_timeout 300s;
    sendfile on;
    tcp_nodelay on;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {workdir}/www;
        default_type text/plain;
        location = /nginx_status {{ stub_status; }}
    }}""")
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_listening(port, proc, "nginx")
    return proc


def wait_listening(port, proc, name):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited at start: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{name} did not listen on {port} within 30 s")


def nginx_accepts(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/nginx_status", timeout=10).read().decode()
    return int(text.splitlines()[2].split()[0])


def run_client(kind, url, c, warmup, duration, goclient):
    if kind in ("transport", "sockets", "before", "transport+telemetry"):
        dll = BEFORE if kind == "before" else BIN
        cmd = ["dotnet", dll, "client", "--handler", "sockets" if kind == "sockets" else "transport", "--url", url, "--concurrency", str(c),
               "--warmup", str(warmup), "--duration", str(duration)]
        if kind == "transport+telemetry":
            cmd += ["--telemetry", "full"]
    elif kind == "go":
        cmd = [goclient, "-url", url, "-concurrency", str(c), "-warmup", str(warmup), "-duration", str(duration)]
    else:
        return run_wrk(url, c, duration)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=warmup + duration + 120)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        sys.exit(f"{kind} printed no result (exit {out.returncode}): {out.stderr[-2000:]}")
    m = json.loads(lines[-1])
    m["handler"] = kind
    return m


def parse_wrk(text):
    """Requests, latencies (p50, p99 in ms) from wrk --latency output."""
    requests, p50, p99 = 0, 0.0, 0.0
    for line in text.splitlines():
        parts = line.split()
        if "requests in" in line:
            requests = int(parts[0])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            v = parts[1]
            ms = float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
            if parts[0] == "50%": p50 = ms
            else: p99 = ms
    return requests, p50, p99


def run_wrk(url, c, duration):
    threads = 1
    out = subprocess.run(["/usr/bin/time", "-f", "TIME %U %S", "wrk", "--latency", "-t", str(threads), "-c", str(c),
                          "-d", f"{int(round(duration))}s", url], capture_output=True, text=True, timeout=duration + 60)
    requests, p50, p99 = parse_wrk(out.stdout)
    user, system = [float(x) for x in [l for l in out.stderr.splitlines() if l.startswith("TIME")][0].split()[1:]]
    errors = 0 if "Non-2xx" not in out.stdout and "Socket errors" not in out.stdout else 1
    return {"handler": "wrk", "concurrency": c, "requests": requests, "errors": errors, "rps": requests / duration,
            "p50_ms": p50, "p99_ms": p99, "cpu_us_per_req": (user + system) * 1e6 / max(requests, 1),
            "alloc_bytes_per_req": 0, "gen0": 0, "gen1": 0, "gen2": 0}


def proc_cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_server(impl, warmup, duration, connections):
    port = free_port()
    dll = BEFORE if impl == "before" else BIN
    proc = subprocess.Popen(["dotnet", dll, "server", "--impl", "serverconn" if impl == "before" else impl, "--port", str(port), "--size", "1024"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc, impl)
        url = f"http://127.0.0.1:{port}/"
        subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{int(round(warmup))}s", url], capture_output=True, timeout=warmup + 60)
        cpu0 = proc_cpu_seconds(proc.pid)
        out = subprocess.run(["wrk", "--latency", "-t", "1", "-c", str(connections), "-d", f"{int(round(duration))}s", url],
                             capture_output=True, text=True, timeout=duration + 60)
        cpu = proc_cpu_seconds(proc.pid) - cpu0
        requests, p50, p99 = parse_wrk(out.stdout)
        bad = "Non-2xx" in out.stdout or "Socket errors" in out.stdout
        return {"impl": impl, "requests": requests, "rps": requests / duration, "p50_ms": p50, "p99_ms": p99,
                "cpu_us_per_req": cpu * 1e6 / max(requests, 1), "errors": 1 if bad else 0, "wrk": out.stdout if bad else ""}
    finally:
        proc.kill()
        proc.wait()


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=4)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help="size:concurrency,... (sizes 1k, 64k)")
    ap.add_argument("--no-anchors", action="store_true", help="only Transport and SocketsHttpHandler")
    ap.add_argument("--no-client", action="store_true")
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json", help="also write every measurement to this file")
    ap.add_argument("--telemetry", action="store_true", help="also measure Transport with a full telemetry listener attached ('transport+telemetry')")
    ap.add_argument("--before", help="HttpUtil.Load.dll built from an earlier commit: its Transport is measured too, as 'before'")
    a = ap.parse_args()
    global BEFORE
    BEFORE = a.before
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y nginx-light wrk")
    if not a.no_build:
        subprocess.run(["dotnet", "build", os.path.join(LOAD, "HttpUtil.Load.csproj"), "-c", "Release", "-nologo", "-v", "q"], check=True)
    kinds = ["transport", "sockets"] + (["before"] if a.before else []) + (["transport+telemetry"] if a.telemetry else [])
    goclient = None
    if not a.no_anchors:
        if shutil.which("go"):
            goclient = os.path.join(tempfile.mkdtemp(), "loadclient")
            env = dict(os.environ, GOCACHE=os.path.join(tempfile.gettempdir(), "httputil-load-gocache"), GOFLAGS="-mod=mod")
            subprocess.run(["go", "build", "-o", goclient, "."], cwd=os.path.join(LOAD, "goclient"), env=env, check=True)
            kinds.append("go")
        else:
            print("(go not found: the Go anchor is skipped)", file=sys.stderr)
        kinds.append("wrk")
    cases = [(s, int(c)) for s, c in (x.split(":") for x in a.cases.split(","))]
    results, server_results = [], []
    print(f"# load benchmark {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average before: {' '.join(load_average())}, "
          f"{os.cpu_count()} cores, warm-up {a.warmup:g} s, window {a.duration:g} s, {a.rounds} rounds", flush=True)
    workdir = tempfile.mkdtemp(prefix="httputil-load-")
    if not a.no_client:
        port = free_port()
        nginx = start_nginx(workdir, port)
        try:
            for r in range(a.rounds):
                for size, c in cases:
                    url = f"http://127.0.0.1:{port}/{size}"
                    order = kinds if r % 2 == 0 else list(reversed(kinds))
                    for kind in order:
                        before = nginx_accepts(port)
                        m = run_client(kind, url, c, a.warmup, a.duration, goclient)
                        # The status request itself is one accepted connection.
                        m.update(round=r, size=size, opened=nginx_accepts(port) - before - 1, load=load_average()[0])
                        results.append(m)
                        print(f"  round {r + 1} {size} C={c} {kind}: {m['rps']:.0f} req/s, {m['cpu_us_per_req']:.1f} us/req CPU, "
                              f"{m['alloc_bytes_per_req']} B/req, p99 {m['p99_ms']} ms, opened {m['opened']}, errors {m['errors']} {m.get('first_error') or ''}", flush=True)
        finally:
            nginx.terminate()
            nginx.wait()
    if not a.no_server:
        for r in range(a.rounds):
            impls = ["serverconn", "kestrel"] + (["before"] if a.before else [])
            for impl in (impls if r % 2 == 0 else list(reversed(impls))):
                m = run_server(impl, a.warmup, a.duration, 64)
                m.update(round=r, load=load_average()[0])
                server_results.append(m)
                print(f"  round {r + 1} server {impl}: {m['rps']:.0f} req/s, {m['cpu_us_per_req']:.1f} us/req CPU, p99 {m['p99_ms']} ms, errors {m['errors']}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"client": results, "server": server_results}, f, indent=1)
    print(f"\nload average after: {' '.join(load_average())}\n")
    if results:
        print_client_table(results, cases, kinds, a.rounds)
    if server_results:
        print_server_table(server_results, a.rounds)


def print_client_table(results, cases, kinds, rounds):
    def pick(size, c, kind):
        return [m for m in results if m["size"] == size and m["concurrency"] == c and m["handler"] == kind]
    anchors = [k for k in kinds if k not in ("transport", "sockets")]
    head = "| body, C | Transport CPU µs/req | Sockets CPU µs/req | " + "".join(f"{k} CPU µs/req | " for k in anchors)
    head += "CPU ratio Transport/Sockets (rounds) | req/s Transport / Sockets | p99 ms Transport / Sockets | alloc B/req Transport / Sockets | gen0/1/2 per window Transport / Sockets | connections opened T / S | errors |"
    print(head)
    print("|" + " --- |" + " --: |" * (head.count("|") - 2))
    for size, c in cases:
        t, s = pick(size, c, "transport"), pick(size, c, "sockets")
        ratios = sorted(x["cpu_us_per_req"] / y["cpu_us_per_req"] for x, y in zip(sorted(t, key=lambda m: m["round"]), sorted(s, key=lambda m: m["round"])))
        def m(ms, k): return med([x[k] for x in ms])
        def gens(ms): return "/".join(f"{m(ms, g):.0f}" for g in ("gen0", "gen1", "gen2"))
        row = f"| {size}, {c} | {m(t, 'cpu_us_per_req'):.1f} | {m(s, 'cpu_us_per_req'):.1f} | "
        row += "".join(f"{m(pick(size, c, k), 'cpu_us_per_req'):.1f} | " for k in anchors)
        rr = f"{med(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})" if ratios else "n/a"
        row += f"{rr} | {m(t, 'rps'):,.0f} / {m(s, 'rps'):,.0f} | {m(t, 'p99_ms'):.2f} / {m(s, 'p99_ms'):.2f} | "
        row += f"{m(t, 'alloc_bytes_per_req'):,.0f} / {m(s, 'alloc_bytes_per_req'):,.0f} | {gens(t)} / {gens(s)} | "
        row += f"{max(x['opened'] for x in t)} / {max(x['opened'] for x in s)} | {sum(x['errors'] for x in t + s)} |"
        print(row)
    print()


def print_server_table(results, rounds):
    sc = [m for m in results if m["impl"] == "serverconn"]
    k = [m for m in results if m["impl"] == "kestrel"]
    ratios = sorted(x["cpu_us_per_req"] / y["cpu_us_per_req"] for x, y in zip(sorted(sc, key=lambda m: m["round"]), sorted(k, key=lambda m: m["round"])))
    print("| server, 1 KiB, wrk 64 connections | ServerConn | Kestrel | ratio ServerConn/Kestrel (rounds) |")
    print("| --- | --: | --: | --: |")
    print(f"| server CPU µs/req | {med([m['cpu_us_per_req'] for m in sc]):.1f} | {med([m['cpu_us_per_req'] for m in k]):.1f} | "
          f"{med(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}) |")
    print(f"| req/s | {med([m['rps'] for m in sc]):,.0f} | {med([m['rps'] for m in k]):,.0f} | |")
    print(f"| p99 ms | {med([m['p99_ms'] for m in sc]):.2f} | {med([m['p99_ms'] for m in k]):.2f} | |")
    print(f"| errors | {sum(m['errors'] for m in sc)} | {sum(m['errors'] for m in k)} | |")
    before = [m for m in results if m["impl"] == "before"]
    if before:
        print(f"| ServerConn before: CPU µs/req, req/s | {med([m['cpu_us_per_req'] for m in before]):.1f}, {med([m['rps'] for m in before]):,.0f} | | |")
    print()


if __name__ == "__main__":
    main()
