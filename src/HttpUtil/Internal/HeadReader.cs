using System.Buffers;
using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>What a client has seen of one response before its final head: whether a byte arrived, the
/// interim (1xx) heads read past, and their count and size against the limits.</summary>
internal sealed class InterimTally
{
    public bool FirstByteSeen;
    public List<ResponseHead>? Heads;
    public int Count;
    public long Bytes;
    public HttpError? Error;

    /// <summary>Counts one interim head of <paramref name="headBytes"/> bytes; the error when past the limits.</summary>
    public HttpError? Add(ParserSettings settings, ResponseHead head, long headBytes)
    {
        (Heads ??= []).Add(head);
        return Error = CoreAdapter.CountInterim(settings, ref Count, ref Bytes, headBytes);
    }
}

/// <summary>
/// Reads heads off the connection's <see cref="PipeReader"/>, consuming exactly their bytes, for the operation
/// that holds the read turn. A parse error, the end of the input or an I/O failure is reported to the core
/// (which breaks the reading side) and thrown.
/// </summary>
internal sealed class HeadReader(PipeReader reader, TurnGate gate)
{
    /// <summary>The limits and leniences for heads.</summary>
    public ParserSettings Settings { get; set; } = ParserSettings.Default;

    /// <summary>True when the last head read (or attempt) saw at least one byte; reset with <see cref="ResetProgress"/>.</summary>
    public bool SawBytes { get; private set; }

    /// <summary>Forgets what the last read saw (before a new exchange's read).</summary>
    public void ResetProgress() => SawBytes = false;

    /// <summary>Reads one head for the running operation of <paramref name="slot"/>.</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Parsed<T>> ReadAsync<T>(ExchangePhase phase, int slot,
        Func<ParserSettings, ReadOnlySequence<byte>, HeadParse<T>> parse, Action? onFirstByte, CancellationToken ct)
    {
        while (true)
        {
            ReadResult rr;
            try
            {
                rr = await reader.ReadAsync(ct).ConfigureAwait(false);
                if (rr.IsCanceled) throw new OperationCanceledException("the pending read was cancelled");
            }
            catch (Exception ex)
            {
                gate.Step(static (m, a) => m.Failed(a.phase, a.slot, a.ex), (phase, slot, ex));
                throw;
            }
            var buffer = rr.Buffer;
            if (!buffer.IsEmpty && !SawBytes)
            {
                SawBytes = true;
                if (onFirstByte is not null) Fire(phase, slot, onFirstByte);
            }
            var result = parse(Settings, buffer);
            if (result.Error is { } error)
            {
                reader.AdvanceTo(buffer.Start);
                gate.Step(static (m, a) => m.Malformed(a.phase, a.slot, a.error), (phase, slot, error));
                throw new MalformedMessageException(error);
            }
            if (result.Complete)
            {
                reader.AdvanceTo(buffer.GetPosition(result.Consumed));
                return result.Parsed!;
            }
            reader.AdvanceTo(buffer.Start, buffer.End);
            if (rr.IsCompleted)
            {
                gate.Step(static (m, a) => m.InputEnded(a.slot, a.length), (slot, length: buffer.Length));
                throw gate.ReadFailure!;
            }
        }
    }

    private void Fire(ExchangePhase phase, int slot, Action hook)
    {
        try
        {
            hook();
        }
        catch (Exception ex)
        {
            gate.Step(static (m, a) => m.Failed(a.phase, a.slot, a.ex), (phase, slot, ex));
            throw;
        }
    }

    /// <summary>
    /// Client: peeks at the response while a request body waits for <c>100 Continue</c>. True to send the body
    /// (<c>100 Continue</c> came, or no answer within <paramref name="timeout"/>); false when a final answer, an
    /// error or the end of the input came first: that is left unread for the response read. Interim responses
    /// other than 100 are consumed, reported and counted in <paramref name="tally"/>.
    /// </summary>
    public async ValueTask<bool> AwaitContinueAsync(ClientTrace? trace, TimeSpan timeout, InterimTally tally, CancellationToken ct)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timer.CancelAfter(timeout);
        while (true)
        {
            ReadResult rr;
            try
            {
                rr = await reader.ReadAsync(timer.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return true; // no answer in time: send the body (RFC 9110 section 10.1.1)
            }
            var buffer = rr.Buffer;
            if (!buffer.IsEmpty && !tally.FirstByteSeen)
            {
                tally.FirstByteSeen = true;
                SawBytes = true;
                Hooks.Fire(nameof(ClientTrace.GotFirstResponseByte), trace?.GotFirstResponseByte);
            }
            var parsed = CoreAdapter.ParseResponseHead(Settings, buffer);
            var interim = parsed.Complete && CoreAdapter.IsInterim(parsed.Parsed!.Head);
            if (interim)
            {
                var head = parsed.Parsed!.Head;
                reader.AdvanceTo(buffer.GetPosition(parsed.Consumed));
                if (CoreAdapter.IsContinue(head))
                {
                    Hooks.Fire(nameof(ClientTrace.Got100Continue), trace?.Got100Continue);
                    return true;
                }
                if (tally.Add(Settings, head, parsed.Consumed) is not null) return false;
                Hooks.Fire(nameof(ClientTrace.Got1xxResponse), trace?.Got1xxResponse, new Got1xxResponseInfo(head.Status, head.Headers));
                continue;
            }
            if (parsed.Error is null && !parsed.Complete && !rr.IsCompleted)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }
            reader.AdvanceTo(buffer.Start);
            return false;
        }
    }
}
