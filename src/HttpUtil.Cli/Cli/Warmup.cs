using System.Net;
using System.Net.Sockets;

namespace HttpUtil.Cli;

/// <summary>
/// Runs the request path before any clock starts, so that what <c>trace</c> reports is the network and the server, not
/// the JIT compiling our code on first use. A <see cref="ServerConn"/> on a loopback port answers the request about to
/// be traced (same method, fields and body), through a <see cref="Transport"/> of its own with the same hooks (the report is drawn after
/// the clock stops, so it needs no warming): on two connections, two requests each (so the reuse path runs too), one response with <c>Content-Length</c>
/// and one chunked, and each body sent only once the client has the head (so the client waits for body bytes on an
/// empty buffer, as it does with a real server). Measured in bench/RESULTS.md: without it the first request to a local
/// nginx reported about 200 ms in all, with it about 1.3 ms (curl: 0.4 ms).
/// </summary>
public static class Warmup
{
    private const int Connections = 2;
    private const int RequestsPerConnection = 2;

    /// <summary>Sends <paramref name="spec"/> to an in-process loopback server and renders the reports to nowhere. Any
    /// failure is swallowed: the warm-up must never stop the real request.</summary>
    /// <param name="spec">The request about to be traced.</param>
    /// <param name="ct">Cancels the warm-up.</param>
    public static async Task RunAsync(RequestSpec spec, CancellationToken ct)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            var local = spec.To(new UriBuilder(spec.Url) { Scheme = "http", Host = "127.0.0.1", Port = port }.Uri);
            for (var c = 0; c < Connections; c++)
            {
                var headSeen = new SignalQueue();
                var serving = ServeAsync(listener, headSeen, ct);
                using var transport = new Transport();
                using var invoker = new HttpMessageInvoker(transport, disposeHandler: false);
                for (var i = 1; i <= RequestsPerConnection; i++)
                    await TraceCommand.TraceOnceAsync(invoker, local, i, static report => _ = report.Phases, ct, headSeen.Signal).ConfigureAwait(false);
                await serving.ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The warm-up is an optimisation only.
        }
    }

    private static readonly (string, string)[] TypicalFields =
    [
        ("Server", "warmup"), ("Date", "Mon, 30 Nov 2026 00:00:00 GMT"), ("Content-Type", "text/plain; charset=utf-8"),
        ("Last-Modified", "Mon, 30 Nov 2026 00:00:00 GMT"), ("ETag", "\"5f-400\""), ("Accept-Ranges", "bytes"), ("Connection", "keep-alive"),
        ("Cache-Control", "no-cache"), ("Vary", "Accept-Encoding"), ("Set-Cookie", "a=b; Path=/"), ("Expires", "0"), ("Location", "/"),
        ("Strict-Transport-Security", "max-age=0"), ("X-Content-Type-Options", "nosniff"), ("Content-Encoding", "identity"), ("Age", "0"),
    ];

    private static async Task ServeAsync(TcpListener listener, SignalQueue headSeen, CancellationToken ct)
    {
        using var socket = await listener.AcceptSocketAsync(ct).ConfigureAwait(false);
        socket.NoDelay = true;
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await using var server = new ServerConn(stream);
        for (var i = 0; i < RequestsPerConnection; i++)
        {
            using var request = await server.ReadAsync(ct).ConfigureAwait(false);
            if (request.Content is { } body) await body.CopyToAsync(Stream.Null, ct).ConfigureAwait(false);
            using var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new LateBody(headSeen, chunked: i == 1) };
            if (i == 1) response.Headers.TransferEncodingChunked = true;
            // The fields servers commonly send, so that mapping them into .NET's header collections is compiled too.
            foreach (var (name, value) in TypicalFields)
            {
                if (!response.Headers.TryAddWithoutValidation(name, value)) response.Content.Headers.TryAddWithoutValidation(name, value);
            }
            await server.WriteAsync(request, response, ct).ConfigureAwait(false);
        }
    }

    /// <summary>A 1 KiB body that flushes the head, then waits for the client to have it before sending the bytes.</summary>
    private sealed class LateBody(SignalQueue headSeen, bool chunked) : HttpContent
    {
        private static readonly byte[] Page = new byte[1024];

        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context, CancellationToken cancellationToken)
        {
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            await headSeen.WaitAsync(cancellationToken).ConfigureAwait(false);
            await stream.WriteAsync(Page, cancellationToken).ConfigureAwait(false);
        }

        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override bool TryComputeLength(out long length)
        {
            length = Page.Length;
            return !chunked;
        }
    }

    /// <summary>Signals that can be waited for one at a time, in order.</summary>
    private sealed class SignalQueue
    {
        private readonly SemaphoreSlim count = new(0);

        public void Signal() => count.Release();

        public Task WaitAsync(CancellationToken ct) => count.WaitAsync(TimeSpan.FromSeconds(5), ct);
    }
}
