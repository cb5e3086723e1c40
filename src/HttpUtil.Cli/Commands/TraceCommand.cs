using System.CommandLine;
using Spectre.Console;

namespace HttpUtil.Cli;

/// <summary>
/// <c>httputil trace URL</c>: sends a request through <see cref="Transport"/> with a <see cref="RequestTimings"/> trace
/// and draws its phases as httpstat does (DNS lookup, TCP connection, TLS handshake, request sent, server processing,
/// content transfer), then the connection's facts and the response head. <c>-n</c> sends several in a row on one
/// Transport (the second shows the reused connection); <c>--json</c> prints one JSON object per request instead.
/// The request path is warmed up on a loopback server first (<see cref="Warmup"/>), so the phases measure the network.
/// </summary>
public static class TraceCommand
{
    /// <summary>The <c>trace</c> command.</summary>
    /// <returns>The command.</returns>
    public static Command Create()
    {
        var request = new RequestOptions();
        var count = new Option<int>("--count", "-n") { Description = "Send this many requests in a row on one Transport.", DefaultValueFactory = _ => 1 };
        var via = new Option<string?>("--via") { Description = "Send through this HTTP proxy (http://host:port)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per request instead of the waterfall." };
        var cold = new Option<bool>("--no-warmup") { Description = "Skip the warm-up: the first request then also measures the JIT (for comparison)." };
        var trace = new Command("trace", "Send a request through Transport and draw the time each phase took (DNS, connect, TLS, send, server, transfer).");
        request.AddTo(trace);
        trace.Options.Add(count);
        trace.Options.Add(via);
        trace.Options.Add(json);
        trace.Options.Add(cold);
        trace.SetAction((result, ct) => CommandRunner.Guarded(async () =>
        {
            var spec = request.Read(result);
            var n = result.GetValue(count);
            if (n < 1) throw new CliException(ExitCode.Usage, $"-n {n}: send at least one request");
            Uri? proxy = null;
            if (result.GetValue(via) is { } v && (!Uri.TryCreate(v, UriKind.Absolute, out proxy) || proxy.Scheme != Uri.UriSchemeHttp))
                throw new CliException(ExitCode.BadUrl, $"--via '{v}' is not an http://host:port proxy URL");
            return await RunAsync(Console.Out, Terminal.Create(), spec, n, proxy, result.GetValue(json), !result.GetValue(cold), ct);
        }));
        return trace;
    }

    /// <summary>Traces <paramref name="count"/> requests; returns <see cref="ExitCode.Ok"/> when every one got a response.</summary>
    /// <param name="output">Where JSON goes.</param>
    /// <param name="console">Where the waterfall goes.</param>
    /// <param name="spec">The request.</param>
    /// <param name="count">How many in a row.</param>
    /// <param name="proxy">An HTTP proxy, or null.</param>
    /// <param name="json">Print JSON instead of the waterfall.</param>
    /// <param name="warmUp">Warm up the request path first.</param>
    /// <param name="ct">Cancels the run.</param>
    /// <returns>The exit code.</returns>
    /// <exception cref="CliException">A request failed (its code says why).</exception>
    public static async Task<ExitCode> RunAsync(TextWriter output, IAnsiConsole console, RequestSpec spec, int count, Uri? proxy, bool json,
        bool warmUp, CancellationToken ct)
    {
        if (warmUp) await Warmup.RunAsync(spec, ct);
        using var transport = new Transport
        {
            Proxy = proxy,
            ServerCertificateValidation = spec.Insecure ? (_, _, _, _) => true : null,
        };
        using var invoker = new HttpMessageInvoker(transport, disposeHandler: false);
        for (var i = 1; i <= count; i++)
        {
            var index = i;
            await spec.WithinMaxTimeAsync(token => TraceOnceAsync(invoker, spec, index, report =>
            {
                if (json) report.WriteJson(output);
                else report.Render(console);
            }, token), ct);
        }
        return ExitCode.Ok;
    }

    /// <summary>Sends one request of <paramref name="spec"/> with a <see cref="RequestTimings"/> trace, reads the body to its
    /// end, and hands the report to <paramref name="use"/> while the response is still open. What <c>trace</c>, the
    /// demo and the warm-up all do, so the warm-up compiles exactly the code the traced request runs.</summary>
    /// <param name="invoker">Sends the request (over a <see cref="Transport"/>).</param>
    /// <param name="spec">The request.</param>
    /// <param name="index">The report's number (1 for the first).</param>
    /// <param name="use">Reads the report.</param>
    /// <param name="ct">Cancels the exchange.</param>
    /// <param name="headArrived">Called once the response head is in, before the body is read (or null).</param>
    /// <returns>When the report was used.</returns>
    public static async Task TraceOnceAsync(HttpMessageInvoker invoker, RequestSpec spec, int index, Action<TraceReport> use, CancellationToken ct,
        Action? headArrived = null)
    {
        var timings = new RequestTimings();
        using var request = spec.Build().WithClientTrace(timings.Trace);
        timings.Start();
        using var response = await invoker.SendAsync(request, ct).ConfigureAwait(false);
        timings.HeadArrived();
        headArrived?.Invoke();
        var bytes = await ReadBodyAsync(response, ct).ConfigureAwait(false);
        timings.BodyEnded();
        use(new TraceReport(index, spec.Url, timings, response, bytes));
    }

    /// <summary>Reads a response body to its end; returns how many bytes it had.</summary>
    /// <param name="response">The response.</param>
    /// <param name="ct">Cancels the read.</param>
    /// <returns>The byte count.</returns>
    public static async Task<long> ReadBodyAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        var buffer = new byte[16 * 1024];
        long total = 0;
        int n;
        while ((n = await body.ReadAsync(buffer, ct)) > 0) total += n;
        return total;
    }
}
