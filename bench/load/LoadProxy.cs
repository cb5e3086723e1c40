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
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        var proxy = ReverseProxy.NewSingleHost(upstream);
        app.Run(proxy.ServeHttpAsync);
        await app.StartAsync();
        Console.WriteLine("ready");
        await Task.Delay(Timeout.Infinite, app.Lifetime.ApplicationStopping).ContinueWith(_ => { });
        return 0;
    }
}
