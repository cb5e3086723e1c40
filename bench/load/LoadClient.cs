using System.Diagnostics;
using System.Globalization;
using System.Net;

namespace HttpUtil.Load;

/// <summary>C workers sending GETs through HttpClient over our Transport or over SocketsHttpHandler, both
/// with a pool of C connections; measured after a warm-up, over a fixed window.</summary>
internal static class LoadClient
{
    public static async Task<int> RunAsync(Options o)
    {
        var handlerName = o.Get("handler");
        using var telemetry = TelemetryListener.FromOptions(o);
        var url = new Uri(o.Get("url"));
        var concurrency = o.GetInt("concurrency", 16);
        var warmup = TimeSpan.FromSeconds(o.GetDouble("warmup", 4));
        var duration = TimeSpan.FromSeconds(o.GetDouble("duration", 5));
        using var sampler = o.Get("alloc-types", "no") == "yes" ? new AllocationSampler() : null;
        HttpMessageHandler handler = handlerName switch
        {
            "transport" => new Transport
            {
                MaxConnsPerHost = concurrency, MaxIdleConnsPerHost = concurrency,
                IdleProbeAfter = TimeSpan.FromSeconds(o.GetDouble("idle-probe-after", 1)),
            },
            "sockets" => new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, UseProxy = false, AllowAutoRedirect = false, UseCookies = false, AutomaticDecompression = DecompressionMethods.None },
            _ => throw new ArgumentException($"unknown handler '{handlerName}' (transport or sockets)"),
        };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        var histogram = new LatencyHistogram();
        long requests = 0, errors = 0, bytes = 0;
        var stop = new CancellationTokenSource();
        string? firstError = null;

        async Task Worker()
        {
            var buffer = new byte[64 * 1024];
            while (!stop.IsCancellationRequested)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, url);
                    using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
                    await using var body = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
                    long got = 0;
                    int n;
                    while ((n = await body.ReadAsync(buffer).ConfigureAwait(false)) > 0) got += n;
                    if (response.StatusCode != HttpStatusCode.OK) throw new HttpRequestException($"status {(int)response.StatusCode}");
                    Interlocked.Add(ref bytes, got);
                    histogram.Record(Stopwatch.GetElapsedTime(started));
                    Interlocked.Increment(ref requests);
                }
                catch (Exception ex)
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, ex.GetType().Name + ": " + ex.Message, null);
                }
            }
        }

        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(Worker)).ToArray();
        await Task.Delay(warmup);

        // The window: everything below is measured from here.
        var process = Process.GetCurrentProcess();
        histogram.Clear();
        var requests0 = Interlocked.Read(ref requests);
        var errors0 = Interlocked.Read(ref errors);
        var bytes0 = Interlocked.Read(ref bytes);
        process.Refresh();
        var cpu0 = process.TotalProcessorTime;
        var alloc0 = GC.GetTotalAllocatedBytes(false);
        int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
        sampler?.Start();
        var clock = Stopwatch.StartNew();
        await Task.Delay(duration);
        var seconds = clock.Elapsed.TotalSeconds;
        process.Refresh();
        var cpu = process.TotalProcessorTime - cpu0;
        var alloc = GC.GetTotalAllocatedBytes(false) - alloc0;
        var done = Interlocked.Read(ref requests) - requests0;
        var failed = Interlocked.Read(ref errors) - errors0;
        var got = Interlocked.Read(ref bytes) - bytes0;
        int d0 = GC.CollectionCount(0) - g0, d1 = GC.CollectionCount(1) - g1, d2 = GC.CollectionCount(2) - g2;
        var p50 = histogram.Percentile(0.50);
        var p99 = histogram.Percentile(0.99);

        stop.Cancel();
        await Task.WhenAll(workers);

        var inv = CultureInfo.InvariantCulture;
        if (sampler is not null)
        {
            // Diagnostics go to standard error; the result line stays alone on standard output.
            foreach (var (type, share) in sampler.Top(25)) Console.Error.WriteLine(string.Create(inv, $"{share,7:P1}  {type}"));
        }
        var perReq = Math.Max(done, 1);
        Console.WriteLine(string.Create(inv,
            $"{{\"handler\":\"{handlerName}\",\"concurrency\":{concurrency},\"seconds\":{seconds:0.###},\"requests\":{done},\"errors\":{failed}," +
            $"\"rps\":{done / seconds:0.#},\"p50_ms\":{p50:0.###},\"p99_ms\":{p99:0.###},\"cpu_us_per_req\":{cpu.TotalMicroseconds / perReq:0.##}," +
            $"\"alloc_bytes_per_req\":{alloc / perReq},\"body_bytes_per_req\":{got / perReq},\"gen0\":{d0},\"gen1\":{d1},\"gen2\":{d2}," +
            $"\"first_error\":{(firstError is null ? "null" : "\"" + firstError.Replace("\"", "'") + "\"")}}}"));
        return failed == 0 ? 0 : 1;
    }
}
