using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace HttpUtil.Cli;

/// <summary>
/// <c>httputil demo</c>: no arguments, no network beyond loopback, no setup. Starts an upstream (Kestrel) and a
/// <see cref="ReverseProxy"/> in front of it on 127.0.0.1, then tours them: a traced GET through the proxy on a new
/// connection and again on the reused one, three requests pipelined over <see cref="ClientConn"/> straight to the
/// upstream, server-sent events that arrive through the proxy one by one, an upload, and the proxy's Proxy hook answering
/// a request itself. Exits 0 when every step behaved as shown.
/// </summary>
public static class DemoCommand
{
    /// <summary>The headings of the tour, in order (the tests look for each).</summary>
    public static readonly string[] Sections =
    [
        "1. A traced GET through the proxy, on a new connection",
        "2. The same GET again: the connection is reused",
        "3. Three requests pipelined over ClientConn, straight to the upstream",
        "4. Server-sent events through the proxy, each as it arrives",
        "5. An upload through the proxy",
        "6. The Proxy hook answers a request itself",
    ];

    /// <summary>The <c>demo</c> command.</summary>
    /// <returns>The command.</returns>
    public static Command Create()
    {
        var demo = new Command("demo", "Start an upstream and a ReverseProxy on 127.0.0.1 and tour them: tracing, reuse, pipelining, streaming, uploads, hooks.");
        demo.SetAction((_, ct) => CommandRunner.Guarded(() => RunAsync(Terminal.Create(), ct)));
        return demo;
    }

    /// <summary>Runs the tour, writing to <paramref name="console"/>.</summary>
    /// <param name="console">Where the tour goes.</param>
    /// <param name="ct">Cancels the tour.</param>
    /// <returns><see cref="ExitCode.Ok"/> when every step behaved as expected, otherwise <see cref="ExitCode.Failed"/>.</returns>
    public static async Task<ExitCode> RunAsync(IAnsiConsole console, CancellationToken ct)
    {
        var events = new EventGate();
        var upstreamHits = 0;
        await using var upstream = await StartAsync(app => app.Run(context =>
        {
            Interlocked.Increment(ref upstreamHits);
            return Upstream(context, events);
        }));
        var upstreamUrl = new Uri(upstream.Urls.First());

        var proxy = ReverseProxy.NewSingleHost(upstreamUrl);
        proxy.Proxy = async (context, _) =>
        {
            if (context.Request.Path != "/answered-by-proxy") return ProxyOutcome.Forward;
            await context.Response.WriteAsync("the Proxy hook answered this; the upstream never saw it", context.RequestAborted);
            return ProxyOutcome.Handled;
        };
        await using var front = await StartAsync(app => app.Run(proxy.ServeHttpAsync));
        var frontUrl = new Uri(front.Urls.First());

        console.MarkupLine($"[bold]httputil demo[/]: upstream (Kestrel) on {upstreamUrl}, ReverseProxy (on Kestrel) in front of it on {frontUrl}");
        var ok = true;
        using var transport = new Transport();
        using var client = new HttpMessageInvoker(transport, disposeHandler: false);
        var hello = new RequestSpec(new Uri(frontUrl, "/hello"), "GET", [], null, false, TimeSpan.FromSeconds(10));
        // Compile the client's path and the proxy's own (a throwaway Transport), so the timings below are the network.
        await Warmup.RunAsync(hello, ct);
        using (var cold = new Transport())
        using (var coldClient = new HttpMessageInvoker(cold))
        using (var r = await coldClient.SendAsync(hello.Build(), ct))
            await TraceCommand.ReadBodyAsync(r, ct);

        // 1 and 2: the same traced GET twice on one Transport.
        for (var i = 0; i < 2; i++)
        {
            Heading(console, Sections[i]);
            var expectReused = i == 1;
            var behaved = false;
            await TraceCommand.TraceOnceAsync(client, hello, i + 1, report =>
            {
                report.Render(console);
                behaved = report.Response.StatusCode == HttpStatusCode.OK && report.Timings.Reused == expectReused;
            }, ct);
            ok &= behaved;
        }

        // 3: pipelining, which HttpClient cannot do.
        Heading(console, Sections[2]);
        using (var tcp = new TcpClient { NoDelay = true })
        {
            await tcp.ConnectAsync(IPAddress.Loopback, upstreamUrl.Port, ct);
            await using var conn = new ClientConn(tcp.GetStream());
            var watch = Stopwatch.StartNew();
            var burst = new[] { "/hello", "/hello?second", "/hello?third" }
                .Select(p => new HttpRequestMessage(HttpMethod.Get, new Uri(upstreamUrl, p))).ToArray();
            foreach (var r in burst) await conn.WriteAsync(r, ct);
            console.MarkupLine($"wrote {burst.Length} requests back to back before reading any answer; Pending = {conn.Pending}");
            foreach (var r in burst)
            {
                using var response = await conn.ReadAsync(r, ct);
                var body = await response.Content.ReadAsStringAsync(ct);
                console.MarkupLine(Markup.Escape($"  {r.RequestUri!.PathAndQuery,-14} -> {(int)response.StatusCode} \"{body}\" at {watch.Elapsed.TotalMilliseconds:F2} ms; Pending = {conn.Pending}"));
                ok &= response.StatusCode == HttpStatusCode.OK;
                r.Dispose();
            }
        }

        // 4: each event is read before the upstream sends the next one (it waits for the reader), so nothing on
        // the way may hold them back.
        Heading(console, Sections[3]);
        {
            var watch = Stopwatch.StartNew();
            using var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, new Uri(frontUrl, "/events")), ct);
            await using var stream = await response.Content.ReadAsStreamAsync(ct);
            using var reader = new StreamReader(stream);
            var seen = 0;
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                seen++;
                console.MarkupLine(Markup.Escape($"  {watch.Elapsed.TotalMilliseconds,8:F2} ms  {line}  (the stream is still open)"));
                events.Received(seen);
            }
            console.MarkupLine(Markup.Escape($"  {watch.Elapsed.TotalMilliseconds,8:F2} ms  the stream ended after {seen} events"));
            ok &= seen == EventGate.Count && events.AllAcknowledged;
        }

        // 5: an upload of unknown length goes out chunked and arrives whole.
        Heading(console, Sections[4]);
        {
            var payload = new byte[1 << 20];
            new Random(42).NextBytes(payload);
            var content = new StreamContent(new MemoryStream(payload));
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(frontUrl, "/upload")) { Content = content };
            request.Headers.TransferEncodingChunked = true;
            using var response = await client.SendAsync(request, ct);
            var answer = await response.Content.ReadAsStringAsync(ct);
            console.MarkupLine(Markup.Escape($"  sent {payload.Length} bytes chunked; the upstream says: {answer}"));
            ok &= answer == $"received {payload.Length} bytes";
        }

        // 6: the hook answers; the upstream's count does not move.
        Heading(console, Sections[5]);
        {
            var before = Volatile.Read(ref upstreamHits);
            using var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, new Uri(frontUrl, "/answered-by-proxy")), ct);
            var answer = await response.Content.ReadAsStringAsync(ct);
            var after = Volatile.Read(ref upstreamHits);
            console.MarkupLine(Markup.Escape($"  {(int)response.StatusCode} \"{answer}\"; upstream requests before {before}, after {after}"));
            ok &= response.StatusCode == HttpStatusCode.OK && before == after;
        }

        console.WriteLine();
        console.MarkupLine(ok ? "[green]every step behaved as expected[/]" : "[red]a step did not behave as expected (see above)[/]");
        return ok ? ExitCode.Ok : ExitCode.Failed;
    }

    private static void Heading(IAnsiConsole console, string title)
    {
        console.WriteLine();
        console.Write(new Rule($"[bold]{Markup.Escape(title)}[/]").LeftJustified());
    }

    private static async Task<WebApplication> StartAsync(Action<WebApplication> configure)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        configure(app);
        await app.StartAsync();
        return app;
    }

    private static async Task Upstream(HttpContext context, EventGate events)
    {
        var ct = context.RequestAborted;
        switch (context.Request.Path.Value)
        {
            case "/hello":
                await context.Response.WriteAsync("hello from the upstream", ct);
                break;
            case "/events":
                context.Response.ContentType = "text/event-stream";
                for (var i = 1; i <= EventGate.Count; i++)
                {
                    await context.Response.WriteAsync($"data: event {i} of {EventGate.Count}\n\n", ct);
                    await context.Response.Body.FlushAsync(ct);
                    if (!await events.WaitReceivedAsync(i, ct)) return;
                }
                break;
            case "/upload":
                long total = 0;
                var buffer = new byte[64 * 1024];
                int n;
                while ((n = await context.Request.Body.ReadAsync(buffer, ct)) > 0) total += n;
                await context.Response.WriteAsync($"received {total} bytes", ct);
                break;
            default:
                context.Response.StatusCode = 404;
                break;
        }
    }

    /// <summary>Lets the upstream send event i+1 only after the client has read event i (at most 5 s each).</summary>
    private sealed class EventGate
    {
        public const int Count = 3;
        private readonly TaskCompletionSource[] received = Enumerable.Range(0, Count).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();

        public bool AllAcknowledged => received.All(r => r.Task.IsCompletedSuccessfully);

        public void Received(int i)
        {
            if (i >= 1 && i <= Count) received[i - 1].TrySetResult();
        }

        public async Task<bool> WaitReceivedAsync(int i, CancellationToken ct)
        {
            try
            {
                await received[i - 1].Task.WaitAsync(TimeSpan.FromSeconds(5), ct);
                return true;
            }
            catch (TimeoutException)
            {
                return false;
            }
        }
    }
}
