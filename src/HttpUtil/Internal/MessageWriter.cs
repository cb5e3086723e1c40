using System.Buffers;
using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// Writes whole messages into the connection's output pipe for the operation that holds the write turn,
/// then tells the core it was written; a failure is reported to the core (breaking the writing side) and
/// rethrown. Writing completes when the bytes are in the pipe; the <see cref="SendLoop"/> puts them on the wire.
/// </summary>
internal sealed class MessageWriter(PipeWriter writer, TurnGate gate, HeadReader heads)
{
    /// <summary>
    /// Writes a client request, firing the trace's write hooks. With <paramref name="continueWait"/> set (and then
    /// <paramref name="tally"/>, which counts what the wait sees of the response), the
    /// head goes first, then the body waits for the server's answer (at most that long): a final answer
    /// instead of <c>100 Continue</c> leaves the body unsent, and the connection carries no further request.
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteRequestAsync(int slot, OutgoingRequest request, HttpContent? content, Func<Headers>? trailers, ClientTrace? trace,
        TimeSpan? continueWait, InterimTally? tally, CancellationToken ct)
    {
        var bodySent = true;
        try
        {
            CoreAdapter.WriteHead(writer, request.Head);
            if (trace is not null)
            {
                if (trace.WroteHeaderField is { } field)
                {
                    foreach (var f in request.Head.Headers.AsSpan())
                        Hooks.Fire(nameof(ClientTrace.WroteHeaderField), field, new WroteHeaderFieldInfo(f.Name, [f.Value]));
                }
                Hooks.Fire(nameof(ClientTrace.WroteHeaders), trace.WroteHeaders);
            }
            if (continueWait is { } wait)
            {
                await BodyWriteStream.FlushAsync(writer, ct).ConfigureAwait(false);
                Hooks.Fire(nameof(ClientTrace.Wait100Continue), trace?.Wait100Continue);
                bodySent = await heads.AwaitContinueAsync(trace, wait, tally!, ct).ConfigureAwait(false);
            }
            if (bodySent) await BodyWriteStream.WriteAsync(writer, content, request.Body, trailers, ct).ConfigureAwait(false);
            await BodyWriteStream.FlushAsync(writer, ct).ConfigureAwait(false);
            if (trace?.WroteRequest is { } wroteRequest) Hooks.Fire(nameof(ClientTrace.WroteRequest), wroteRequest, new WroteRequestInfo(null));
        }
        catch (Exception ex)
        {
            gate.Step(static (m, a) => m.Failed(ExchangePhase.Request, a.slot, a.ex), (slot, ex));
            if (ex is not ClientTraceException && trace?.WroteRequest is { } wroteRequest)
                Hooks.Fire(nameof(ClientTrace.WroteRequest), wroteRequest, new WroteRequestInfo(ex));
            throw;
        }
        if (!bodySent) gate.Step(static (m, _) => m.StopWriting(), 0);
        gate.Step(static (m, s) => m.Wrote(s), slot);
    }

    /// <summary>Writes a server response: head, body, trailers for a chunked body.</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteResponseAsync(int slot, ResponseHead head, Framing.BodyLength plan, HttpContent? content, Func<Headers> trailers,
        CancellationToken ct)
    {
        try
        {
            CoreAdapter.WriteHead(writer, head);
            await BodyWriteStream.WriteAsync(writer, content, plan, trailers, ct).ConfigureAwait(false);
            await BodyWriteStream.FlushAsync(writer, ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            gate.Step(static (m, a) => m.Failed(ExchangePhase.Response, a.slot, a.ex), (slot, ex));
            throw;
        }
        gate.Step(static (m, s) => m.Wrote(s), slot);
    }

    /// <summary>Server: writes <c>100 Continue</c> for <paramref name="slot"/> when the core says it is time
    /// (the handler started reading the body and every earlier response is out).</summary>
    public async ValueTask WriteContinueAsync(int slot, CancellationToken ct)
    {
        if (!gate.Step(static (m, s) => m.BodyWanted(s), slot).SendContinue) return;
        try
        {
            writer.Write(CoreAdapter.ContinueBytes);
            await BodyWriteStream.FlushAsync(writer, ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            gate.Step(static (m, a) => m.ContinueWritten(a.slot, a.ex), (slot, ex));
            throw;
        }
        gate.Step(static (m, s) => m.ContinueWritten(s, null), slot);
    }
}
