using System.CommandLine;

namespace HttpUtil.Cli;

/// <summary>
/// <c>httputil dump URL</c>: sends a request through <see cref="Transport"/> and writes the request exactly as it went
/// on the wire (<see cref="HttpDump.DumpRequestOutAsync"/>), then the response head exactly as it came back
/// (<see cref="HttpDump.DumpResponseAsync"/>); with <c>--body</c> each followed by its body, framed as on the wire.
/// The bytes go to standard output unchanged.
/// </summary>
public static class DumpCommand
{
    /// <summary>The <c>dump</c> command.</summary>
    /// <returns>The command.</returns>
    public static Command Create()
    {
        var request = new RequestOptions();
        var body = new Option<bool>("--body") { Description = "Also write the bodies (as framed on the wire: chunks stay chunks)." };
        var dump = new Command("dump", "Send a request and write the exact bytes of the request as sent and of the response head as received.");
        request.AddTo(dump);
        dump.Options.Add(body);
        dump.SetAction((result, ct) => CommandRunner.Guarded(async () =>
        {
            var spec = request.Read(result);
            await using var stdout = Console.OpenStandardOutput();
            return await RunAsync(stdout, spec, result.GetValue(body), ct);
        }));
        return dump;
    }

    /// <summary>Sends the request and writes the dumps to <paramref name="output"/>.</summary>
    /// <param name="output">Where the bytes go.</param>
    /// <param name="spec">The request.</param>
    /// <param name="body">Also write the bodies.</param>
    /// <param name="ct">Cancels the exchange.</param>
    /// <returns><see cref="ExitCode.Ok"/>.</returns>
    /// <exception cref="CliException">The exchange failed (its code says why).</exception>
    public static async Task<ExitCode> RunAsync(Stream output, RequestSpec spec, bool body, CancellationToken ct)
    {
        using var transport = new Transport { ServerCertificateValidation = spec.Insecure ? (_, _, _, _) => true : null };
        using var invoker = new HttpMessageInvoker(transport, disposeHandler: false);
        using var request = spec.Build();
        await spec.WithinMaxTimeAsync(async token =>
        {
            // Dumped before sending: the same head Transport writes, and the body stays sendable.
            var sent = await HttpDump.DumpRequestOutAsync(request, body, token);
            using var response = await invoker.SendAsync(request, token);
            var received = await HttpDump.DumpResponseAsync(response, body, token);
            await output.WriteAsync(sent, ct);
            await output.WriteAsync(received, ct);
            await output.FlushAsync(ct);
        }, ct);
        return ExitCode.Ok;
    }
}
