using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HttpUtil.Cli;

/// <summary>
/// <c>httputil proxy UPSTREAM</c>: runs <see cref="ReverseProxy.NewSingleHost"/> on Kestrel until Ctrl+C or SIGTERM,
/// logging to the console. Stopping is graceful: no new connections are taken, and requests in flight finish (for at
/// most 30 seconds) before the process exits with 0. A listen address that is taken is one line and exit code 11; a
/// bad upstream URL, exit code 3.
/// </summary>
public static class ProxyCommand
{
    /// <summary>How long a stop waits for requests in flight.</summary>
    public static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The <c>proxy</c> command.</summary>
    /// <returns>The command.</returns>
    public static Command Create()
    {
        var upstream = new Argument<string>("upstream-url") { Description = "Where every request goes (http or https, with an optional base path)." };
        var listen = new Option<string>("--listen", "-l")
        {
            Description = "The address to listen on, ip:port (port 0 picks a free one; the log says which).",
            DefaultValueFactory = _ => "127.0.0.1:8080",
        };
        var flush = new Option<string?>("--flush-interval")
        {
            Description = "How often to flush the response to the client while copying: -1 after every write, 0 (the default) when the " +
                "response is streamed or of unknown length, or a duration such as 100ms or 1s.",
        };
        var serverTiming = new Option<bool>("--server-timing") { Description = "Add a Server-Timing field with the upstream's phases (dns, connect, tls, wait, total)." };
        var debug = new Option<bool>("--debug") { Description = "Log each exchange with its upstream timings (Debug level)." };
        var accessLog = new Option<bool>("--access-log") { Description = "Log one line per request: client, method, target, status, milliseconds." };
        var proxy = new Command("proxy", "Run a reverse proxy to UPSTREAM on Kestrel until Ctrl+C or SIGTERM (graceful: requests in flight finish).")
        {
            upstream, listen, flush, serverTiming, debug, accessLog,
        };
        proxy.SetAction((result, ct) => CommandRunner.Guarded(async () =>
        {
            var text = result.GetValue(upstream) ?? "";
            if (!Uri.TryCreate(text, UriKind.Absolute, out var target) || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps)
                || target.Host.Length == 0)
                throw new CliException(ExitCode.BadUrl, $"'{text}' is not an absolute http or https upstream URL");
            var endpoint = ParseEndpoint(result.GetValue(listen) ?? "");
            var interval = ParseInterval(result.GetValue(flush));
            var options = new ProxyOptions(target, endpoint, interval, result.GetValue(serverTiming), result.GetValue(debug), result.GetValue(accessLog));
            return await RunAsync(options, Console.Out, ct);
        }));
        return proxy;
    }

    /// <summary>What <c>proxy</c> was asked to do.</summary>
    /// <param name="Upstream">The upstream URL.</param>
    /// <param name="Listen">The address to listen on.</param>
    /// <param name="FlushInterval">The proxy's <see cref="ReverseProxy.FlushInterval"/>.</param>
    /// <param name="ServerTiming">Add <c>Server-Timing</c>.</param>
    /// <param name="Debug">Log each exchange's timings.</param>
    /// <param name="AccessLog">Log one line per request.</param>
    public sealed record ProxyOptions(Uri Upstream, IPEndPoint Listen, TimeSpan FlushInterval, bool ServerTiming, bool Debug, bool AccessLog);

    /// <summary>Runs the proxy until the process is asked to stop (or <paramref name="ct"/> is cancelled), then drains.</summary>
    /// <param name="options">What to run.</param>
    /// <param name="output">Where the start and stop lines go.</param>
    /// <param name="ct">Stops the proxy, as SIGTERM does.</param>
    /// <returns><see cref="ExitCode.Ok"/> after a graceful stop.</returns>
    /// <exception cref="CliException">The address cannot be listened on (11).</exception>
    public static async Task<ExitCode> RunAsync(ProxyOptions options, TextWriter output, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("HttpUtil", options.Debug ? LogLevel.Debug : LogLevel.Information);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = DrainTimeout);
        builder.WebHost.UseKestrel(k => k.Listen(options.Listen));
        await using var app = builder.Build();

        var proxy = ReverseProxy.NewSingleHost(options.Upstream);
        proxy.FlushInterval = options.FlushInterval;
        proxy.ServerTiming = options.ServerTiming;
        proxy.Debug = options.Debug;
        var inFlight = 0;
        app.Use(async (HttpContext context, RequestDelegate next) =>
        {
            Interlocked.Increment(ref inFlight);
            try
            {
                await next(context);
            }
            finally
            {
                Interlocked.Decrement(ref inFlight);
            }
        });

        if (options.AccessLog)
        {
            var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("HttpUtil.AccessLog");
            app.Use(async (HttpContext context, RequestDelegate next) =>
            {
                var start = Stopwatch.GetTimestamp();
                await next(context);
                log.LogInformation("{Client} \"{Method} {Target} {Protocol}\" {Status} {Ms:F1} ms", context.Connection.RemoteIpAddress,
                    context.Request.Method, context.Request.Path + context.Request.QueryString, context.Request.Protocol, context.Response.StatusCode,
                    Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            });
        }
        app.Run(proxy.ServeHttpAsync);

        try
        {
            await app.StartAsync(ct);
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
        {
            throw new CliException(ExitCode.AddressInUse, $"cannot listen on {options.Listen}: the address is already in use");
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            throw new CliException(ExitCode.AddressInUse, $"cannot listen on {options.Listen}: {e.Message}");
        }

        // The address as bound (with the port picked for port 0).
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? app.Urls.First();
        output.WriteLine($"httputil proxy: listening on {url}, forwarding to {options.Upstream} (Ctrl+C to stop)");
        output.Flush();
        app.Lifetime.ApplicationStopping.Register(() =>
        {
            output.WriteLine($"httputil proxy: stopping; letting {Volatile.Read(ref inFlight)} request(s) in flight finish (at most {DrainTimeout.TotalSeconds:0} s)");
            output.Flush();
        });
        using (ct.Register(() => app.Lifetime.StopApplication()))
            await app.WaitForShutdownAsync();
        output.WriteLine("httputil proxy: stopped");
        return ExitCode.Ok;
    }

    /// <summary>Reads <c>ip:port</c> (or <c>localhost:port</c>, <c>[::1]:port</c>).</summary>
    /// <param name="text">The text.</param>
    /// <returns>The endpoint.</returns>
    /// <exception cref="CliException">It is not an address and port (2).</exception>
    public static IPEndPoint ParseEndpoint(string text)
    {
        var t = text.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase) ? "127.0.0.1" + text["localhost".Length..] : text;
        if (IPEndPoint.TryParse(t, out var endpoint) && t.Contains(':')) return endpoint;
        throw new CliException(ExitCode.Usage, $"--listen '{text}' is not ip:port (for example 127.0.0.1:8080)");
    }

    /// <summary>Reads a flush interval: <c>-1</c>, <c>0</c>, a number of milliseconds with <c>ms</c>, seconds with <c>s</c>,
    /// or a <see cref="TimeSpan"/>.</summary>
    /// <param name="text">The text, or null for zero.</param>
    /// <returns>The interval (negative: flush after every write).</returns>
    /// <exception cref="CliException">It does not parse (2).</exception>
    public static TimeSpan ParseInterval(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return TimeSpan.Zero;
        var t = text.Trim();
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        if (t.EndsWith("ms", StringComparison.Ordinal) && double.TryParse(t[..^2], inv, out var ms)) return TimeSpan.FromMilliseconds(ms);
        if (t.EndsWith('s') && double.TryParse(t[..^1], inv, out var s)) return TimeSpan.FromSeconds(s);
        if (double.TryParse(t, inv, out var n) && n < 0) return TimeSpan.FromTicks(-1);
        if (double.TryParse(t, inv, out n) && n == 0) return TimeSpan.Zero;
        if (TimeSpan.TryParse(t, inv, out var span)) return span;
        throw new CliException(ExitCode.Usage, $"--flush-interval '{text}' is not -1, 0, or a duration such as 100ms or 2s");
    }
}
