using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace HttpUtil.Cli;

/// <summary>
/// <c>httputil demo</c>: a ClientConn pipelines three requests to a ServerConn on an embedded upstream
/// on 127.0.0.1 and prints both sides of the wire. No setup, no network beyond loopback.
/// </summary>
public static class DemoCommand
{
    /// <summary>The <c>demo</c> command.</summary>
    /// <returns>The command, wired to <see cref="RunAsync"/>.</returns>
    public static Command Create()
    {
        var demo = new Command("demo", "Pipeline three requests from a ClientConn to a ServerConn on an embedded 127.0.0.1 upstream and print both sides of the wire.");
        demo.SetAction((_, ct) => RunAsync(Console.Out, ct));
        return demo;
    }

    /// <summary>Runs the demo, writing to <paramref name="output"/>; returns the exit code (0 when every step behaved as expected).</summary>
    public static async Task<int> RunAsync(TextWriter output, CancellationToken ct)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        output.WriteLine($"upstream: ServerConn on 127.0.0.1:{port}");
        var serving = ServeOneAsync(listener, output, ct);

        using var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(IPAddress.Loopback, port, ct);
        await using var client = new ClientConn(tcp.GetStream());
        var watch = Stopwatch.StartNew();

        var requests = new[]
        {
            new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/hello"),
            new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/echo") { Content = new StringContent("ping") },
            new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/stream"),
        };
        requests[2].Headers.ConnectionClose = true;
        foreach (var r in requests) await client.WriteAsync(r, ct);
        output.WriteLine($"client: wrote {requests.Length} requests back to back (pipelined); Pending = {client.Pending}");

        var ok = true;
        foreach (var r in requests)
        {
            var response = await client.ReadAsync(r, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            output.WriteLine();
            output.WriteLine($"client: response to {r.Method} {r.RequestUri!.PathAndQuery} after {watch.Elapsed.TotalMilliseconds:F1} ms, as read off the wire:");
            output.Write(Indent(response.GetRawHead() ?? ""));
            output.WriteLine($"  body: {body}");
            foreach (var t in response.TrailingHeaders) output.WriteLine($"  trailer: {t.Key}: {string.Join(", ", t.Value)}");
            output.WriteLine($"  last on the connection: {response.IsLastOnConnection()}; Pending = {client.Pending}");
        }

        try
        {
            await client.WriteAsync(new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/late"), ct);
            output.WriteLine("client: a write after Connection: close went through (unexpected)");
            ok = false;
        }
        catch (PersistEofException e)
        {
            output.WriteLine();
            output.WriteLine($"client: a fourth write is refused: {e.GetType().Name}: {e.Message}");
        }

        ok &= await serving;
        return ok ? 0 : 1;
    }

    private static async Task<bool> ServeOneAsync(TcpListener listener, TextWriter output, CancellationToken ct)
    {
        using var accepted = await listener.AcceptTcpClientAsync(ct);
        await using var server = new ServerConn(accepted.GetStream());
        while (true)
        {
            HttpRequestMessage request;
            try
            {
                request = await server.ReadAsync(ct);
            }
            catch (Exception e) when (e is PersistEofException or EndOfStreamException)
            {
                output.WriteLine($"upstream: no more requests ({e.GetType().Name})");
                return true;
            }

            output.WriteLine();
            output.WriteLine("upstream: request as read off the wire:");
            output.Write(Indent(request.GetRawHead() ?? ""));
            var body = request.Content is null ? "" : await request.Content.ReadAsStringAsync(ct);
            var response = new HttpResponseMessage(HttpStatusCode.OK);
            switch (request.RequestUri?.AbsolutePath)
            {
                case "/echo":
                    response.Content = new StringContent(body);
                    break;
                case "/stream":
                    // Unknown length: sent chunked, with a trailer.
                    response.Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("streamed in chunks")));
                    response.Headers.TransferEncodingChunked = true;
                    response.TrailingHeaders.Add("X-Checksum", "demo");
                    break;
                default:
                    response.Content = new StringContent("hello from ServerConn");
                    break;
            }
            await server.WriteAsync(request, response, ct);
            if (request.IsLastOnConnection())
            {
                output.WriteLine("upstream: that request said Connection: close; its response said so too");
                return true;
            }
        }
    }

    private static string Indent(string rawHead)
    {
        var sb = new StringBuilder();
        foreach (var line in rawHead.Split("\r\n"))
        {
            if (line.Length > 0) sb.Append("  | ").Append(line).Append('\n');
        }
        return sb.ToString();
    }
}
