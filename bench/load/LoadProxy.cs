using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HttpUtil.Load;

/// <summary>The proxy under test in bench/proxy: ReverseProxy.NewSingleHost on a minimal Kestrel host (HTTP/1.1,
/// logging off), as a user would host it.</summary>
internal static class LoadProxy
{
    public static async Task<int> RunAsync(Options o)
    {
        var port = o.GetInt("port", 0);
        var upstream = new Uri(o.Get("upstream"));
        using var telemetry = TelemetryListener.FromOptions(o);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        var proxy = ReverseProxy.NewSingleHost(upstream);
        // --body-idle none: a Transport like the default one but without its response body idle timeout (to measure it).
        if (o.Get("body-idle", "") == "none") proxy.Transport = new Transport { MaxIdleConnsPerHost = 256 };
        app.Run(proxy.ServeHttpAsync);
        await app.StartAsync();
        Console.WriteLine("ready");
        // --alloc-types S: after S seconds, sample allocations for 5 s and print the top types to standard error.
        if (o.GetDouble("alloc-types", 0) is var after and > 0)
        {
            await Task.Delay(TimeSpan.FromSeconds(after));
            using var sampler = new AllocationSampler();
            sampler.Start();
            await Task.Delay(TimeSpan.FromSeconds(5));
            foreach (var (type, share) in sampler.Top(25)) Console.Error.WriteLine($"{share,6:P1}  {type}");
        }
        // --stats S: every S seconds, one JSON line on standard output with what the soak watches.
        if (o.GetDouble("stats", 0) is var every and > 0)
            _ = SoakStats.RunAsync(TimeSpan.FromSeconds(every), app.Lifetime.ApplicationStopping);
        await Task.Delay(Timeout.Infinite, app.Lifetime.ApplicationStopping).ContinueWith(_ => { });
        return 0;
    }
}
