// The load benchmark's one program (bench/load/run.py drives it):
//   client --handler transport|sockets --url U --concurrency C [--warmup S] [--duration S] [--telemetry none|full]
//       C workers send GETs in a loop through HttpClient over the chosen handler for warm-up plus duration
//       seconds and print one JSON line measured over the duration only: requests/s, latency percentiles,
//       the process's CPU time per request (user + system, all threads), bytes allocated per request and
//       garbage collections.
//       --alloc-types yes also prints to standard error the types allocated most in the window (sampled).
//   server --impl serverconn|kestrel --port P [--size N]
//       answers every request with N bytes (default 1024) until killed; prints "ready" once listening.
//   proxy --upstream URL --port P [--telemetry none|full] [--stats S]
//       ReverseProxy.NewSingleHost(URL) on Kestrel (bench/proxy); prints "ready" once listening.
using HttpUtil.Load;

return args.FirstOrDefault() switch
{
    "client" => await LoadClient.RunAsync(Options.Parse(args[1..])),
    "server" => await LoadServers.RunAsync(Options.Parse(args[1..])),
    "proxy" => await LoadProxy.RunAsync(Options.Parse(args[1..])),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: HttpUtil.Load client --handler transport|sockets --url U --concurrency C [--warmup S] [--duration S] [--telemetry none|full]");
    Console.Error.WriteLine("       HttpUtil.Load server --impl serverconn|kestrel --port P [--size N]");
    Console.Error.WriteLine("       HttpUtil.Load proxy --upstream URL --port P [--telemetry none|full] [--stats S]");
    return 2;
}
