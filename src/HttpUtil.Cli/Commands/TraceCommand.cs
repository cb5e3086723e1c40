using System.CommandLine;
using System.Diagnostics;
using System.Text;

namespace HttpUtil.Cli;

/// <summary>
/// <c>httputil trace URL</c>: sends one request through <see cref="Transport"/> with every
/// <see cref="ClientTrace"/> hook set and prints a timing waterfall (each hook's time since the start,
/// with a bar), then the status line.
/// </summary>
public static class TraceCommand
{
    /// <summary>The <c>trace</c> command: a URL, <c>-X</c> method, <c>-k</c>.</summary>
    /// <returns>The command, wired to <see cref="RunAsync"/>; a URL that is not absolute http(s) exits with 2.</returns>
    public static Command Create()
    {
        var url = new Argument<string>("url") { Description = "An absolute http or https URL." };
        var method = new Option<string>("--method", "-X") { Description = "The request method.", DefaultValueFactory = _ => "GET" };
        var insecure = new Option<bool>("--insecure", "-k") { Description = "Accept any server certificate." };
        var trace = new Command("trace", "Send one request through Transport and print a timing waterfall of every ClientTrace hook.")
        {
            url, method, insecure,
        };
        trace.SetAction((result, ct) =>
        {
            var text = result.GetValue(url) ?? "";
            if (!Uri.TryCreate(text, UriKind.Absolute, out var target) || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps))
            {
                Console.Error.WriteLine($"httputil: '{text}' is not an absolute http or https URL");
                return Task.FromResult(2);
            }
            return RunAsync(Console.Out, target, result.GetValue(method), result.GetValue(insecure), ct);
        });
        return trace;
    }

    /// <summary>Runs the trace; returns 0 when a response came back, 1 when the request failed.</summary>
    /// <param name="output">Where the waterfall goes.</param>
    /// <param name="url">An absolute http or https URL.</param>
    /// <param name="method">The method (GET when null).</param>
    /// <param name="insecure">Accept any server certificate.</param>
    /// <param name="ct">Cancels the request.</param>
    public static async Task<int> RunAsync(TextWriter output, Uri url, string? method, bool insecure, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        var lines = new List<(double Ms, string What)>();
        var gate = new object();
        void Mark(string what)
        {
            lock (gate) lines.Add((Stopwatch.GetElapsedTime(start).TotalMilliseconds, what));
        }

        var trace = new ClientTrace
        {
            GetConn = info => Mark($"GetConn {info.HostPort}"),
            DnsStart = info => Mark($"DNSStart {info.Host}"),
            DnsDone = info => Mark(info.Error is null
                ? $"DNSDone {string.Join(", ", info.Addresses)}{(info.Coalesced ? " (coalesced)" : "")}"
                : $"DNSDone error: {info.Error.Message}"),
            ConnectStart = info => Mark($"ConnectStart {info.Network} {info.Address}"),
            ConnectDone = info => Mark(info.Error is null ? $"ConnectDone {info.Address}" : $"ConnectDone {info.Address} error: {info.Error.Message}"),
            TlsHandshakeStart = () => Mark("TLSHandshakeStart"),
            TlsHandshakeDone = info => Mark(info.Error is null
                ? $"TLSHandshakeDone {info.State?.Protocol} {info.State?.CipherSuite} ALPN={info.State?.ApplicationProtocol}"
                : $"TLSHandshakeDone error: {info.Error.Message}"),
            GotConn = info => Mark($"GotConn reused={info.Reused} wasIdle={info.WasIdle}"),
            WroteHeaderField = info => Mark($"WroteHeaderField {info.Name}: {string.Join(", ", info.Values)}"),
            WroteHeaders = () => Mark("WroteHeaders"),
            Wait100Continue = () => Mark("Wait100Continue"),
            Got100Continue = () => Mark("Got100Continue"),
            WroteRequest = info => Mark(info.Error is null ? "WroteRequest" : $"WroteRequest error: {info.Error.Message}"),
            GotFirstResponseByte = () => Mark("GotFirstResponseByte"),
            Got1xxResponse = info => Mark($"Got1xxResponse {info.Status}"),
            PutIdleConn = info => Mark(info.Error is null ? "PutIdleConn" : $"PutIdleConn not reused: {info.Error.Message}"),
        };

        using var transport = new Transport
        {
            ServerCertificateValidation = insecure ? (_, _, _, _) => true : null,
        };
        using var invoker = new HttpMessageInvoker(transport);
        var request = new HttpRequestMessage(new HttpMethod(method ?? "GET"), url).WithClientTrace(trace);
        string status;
        long bodyBytes = 0;
        var code = 0;
        try
        {
            using var response = await invoker.SendAsync(request, ct);
            await using var body = await response.Content.ReadAsStreamAsync(ct);
            var buffer = new byte[16 * 1024];
            int n;
            while ((n = await body.ReadAsync(buffer, ct)) > 0) bodyBytes += n;
            Mark($"body read ({bodyBytes} bytes)");
            status = $"HTTP/{response.Version} {(int)response.StatusCode} {response.ReasonPhrase}";
        }
        catch (Exception e) when (e is HttpRequestException or ClientTraceException or IOException)
        {
            status = $"failed: {e.Message}";
            code = 1;
        }

        Print(output, lines);
        output.WriteLine();
        output.WriteLine(status);
        return code;
    }

    private static void Print(TextWriter output, List<(double Ms, string What)> lines)
    {
        var total = lines.Count == 0 ? 1 : Math.Max(lines[^1].Ms, 0.001);
        const int width = 30;
        foreach (var (ms, what) in lines)
        {
            var at = (int)Math.Round(ms / total * width);
            var bar = new StringBuilder().Append(' ', Math.Min(at, width)).Append('|').ToString().PadRight(width + 1);
            output.WriteLine($"{ms,9:F2} ms {bar} {what}");
        }
    }
}
