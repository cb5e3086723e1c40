using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HttpUtil.Benchmarks;

/// <summary>Kestrel on 127.0.0.1 with a port chosen by the OS, without logging: the benchmarks' reference server.</summary>
internal static class BenchKestrel
{
    /// <summary>Starts Kestrel serving <paramref name="handler"/>; returns the app and its base address ("http://127.0.0.1:port").</summary>
    public static async Task<(WebApplication App, string Address)> StartAsync(RequestDelegate handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.Run(handler);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return (app, address);
    }
}
