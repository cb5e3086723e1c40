using System.Buffers;
using System.IO.Pipelines;
using HttpUtil.Core;
using Microsoft.FSharp.Core;
using Microsoft.FSharp.Collections;

namespace HttpUtil;

/// <summary>What reading a head off the connection found.</summary>
internal readonly record struct HeadRead<T>(Parsed<T>? Parsed, HttpError? Error, long EndedAfter);

/// <summary>
/// The I/O shell shared by <see cref="ClientConn"/> and <see cref="ServerConn"/>: it holds the stream,
/// the pipe reader and writer and the core's state, feeds the core events and carries out the actions
/// it returns. It makes no protocol decision of its own.
/// </summary>
internal sealed class ConnectionShell
{
    private readonly object gate = new();
    private readonly Dictionary<(Phase, int), TaskCompletionSource<Verdict>> waiters = new();
    private readonly Dictionary<HttpRequestMessage, int> slots = new(ReferenceEqualityComparer.Instance);
    private readonly bool ownsReader;
    private readonly string objectName;
    private ConnState state;
    private BodyReadStream? lastBody;
    private readonly Pipe output;
    private readonly Task sendLoop;

    public ConnectionShell(Role role, Stream stream, PipeReader? reader, string objectName)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Stream = stream;
        ownsReader = reader is null;
        Reader = reader ?? PipeReader.Create(stream, new StreamPipeReaderOptions(leaveOpen: true));
        output = new Pipe(new PipeOptions(
            readerScheduler: PipeScheduler.ThreadPool,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: 256 * 1024,
            resumeWriterThreshold: 128 * 1024,
            useSynchronizationContext: false));
        Writer = output.Writer;
        sendLoop = SendLoopAsync();
        this.objectName = objectName;
        state = Connection.create(role);
    }

    public Stream Stream { get; }
    public PipeReader Reader { get; }
    public PipeWriter Writer { get; }
    public ParserSettings Settings { get; set; } = ParserSettings.Default;
    public long MaxDrainBytes { get; set; } = 256 * 1024;

    public int Pending
    {
        get { lock (gate) return Connection.pending(state); }
    }

    public ConnState State
    {
        get { lock (gate) return state; }
    }

    /// <summary>Remembers the slot of a request written (client) or read (server) here.</summary>
    public void RememberSlot(HttpRequestMessage request, int slot)
    {
        lock (gate) slots[request] = slot;
    }

    /// <summary>The slot of <paramref name="request"/>, forgotten now (none: not pending here).</summary>
    public FSharpValueOption<int> TakeSlot(HttpRequestMessage request)
    {
        lock (gate)
        {
            return slots.Remove(request, out var slot) ? FSharpValueOption<int>.NewValueSome(slot) : FSharpValueOption<int>.ValueNone;
        }
    }

    public Exception Error(ConnError error) => ConnErrors.ToException(error, objectName);

    /// <summary>Feeds one event to the core, wakes the operations it grants, returns its actions.</summary>
    public FSharpList<ConnAction> Step(ConnEvent e)
    {
        List<(TaskCompletionSource<Verdict>, Verdict)>? wake = null;
        FSharpList<ConnAction> actions;
        lock (gate)
        {
            actions = StepLocked(e, ref wake);
        }
        Wake(wake);
        return actions;
    }

    /// <summary>
    /// Sends what writers put in the output pipe: everything buffered when it wakes goes out together,
    /// so pipelined messages written close together share a send. A send failure completes the pipe
    /// with the exception, which the next writer's flush throws.
    /// </summary>
    private async Task SendLoopAsync()
    {
        await Task.Yield();
        var reader = output.Reader;
        var socket = (Stream as System.Net.Sockets.NetworkStream)?.Socket;
        var gather = new List<ArraySegment<byte>>();
        try
        {
            while (true)
            {
                var rr = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = rr.Buffer;
                if (socket is not null && !buffer.IsSingleSegment && TryGather(buffer, gather))
                {
                    // One gathered send (sendmsg) for the whole batch.
                    var left = buffer.Length;
                    while (left > 0)
                    {
                        var sent = await socket.SendAsync(gather, System.Net.Sockets.SocketFlags.None).ConfigureAwait(false);
                        left -= sent;
                        if (left > 0) TryGather(buffer.Slice(buffer.Length - left), gather);
                    }
                }
                else
                {
                    foreach (var segment in buffer) await Stream.WriteAsync(segment).ConfigureAwait(false);
                    if (!buffer.IsEmpty) await Stream.FlushAsync().ConfigureAwait(false);
                }
                reader.AdvanceTo(buffer.End);
                if (rr.IsCompleted) break;
            }
            await reader.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await reader.CompleteAsync(ex).ConfigureAwait(false);
        }
    }

    private static bool TryGather(ReadOnlySequence<byte> buffer, List<ArraySegment<byte>> into)
    {
        into.Clear();
        foreach (var segment in buffer)
        {
            if (!System.Runtime.InteropServices.MemoryMarshal.TryGetArray(segment, out var array)) return false;
            into.Add(array);
        }
        return true;
    }

    /// <summary>Stops writing: what was written is sent (waiting up to <paramref name="wait"/>), then the
    /// send loop ends and the stream is free for someone else.</summary>
    private void StopSending(TimeSpan wait)
    {
        try
        {
            Writer.Complete();
        }
        catch (InvalidOperationException)
        {
            // A write is running on another thread; it fails on its own.
        }
        try
        {
            sendLoop.Wait(wait);
        }
        catch (AggregateException)
        {
            // The send loop records its failure in the pipe.
        }
    }

    /// <summary>
    /// Starts an operation and waits for its turn: feeds <paramref name="e"/> (for an answer,
    /// <paramref name="knownSlot"/> is the slot of its request), then returns the operation's slot and
    /// whether the message it writes must end the connection. A refused operation throws its error.
    /// </summary>
    public async ValueTask<(int Slot, bool EndsConnection)> TakeTurnAsync(ConnEvent e, Phase phase, FSharpValueOption<int> knownSlot,
        CancellationToken ct)
    {
        var (slot, turn) = Start(e, phase, knownSlot.IsSome ? knownSlot.Value : null);
        var verdict = await AwaitTurnAsync(turn, phase, slot, ct).ConfigureAwait(false);
        return verdict switch
        {
            Verdict.Refuse refused => throw Error(refused.Error),
            Verdict.Proceed proceed => (slot, proceed.EndsConnection),
            _ => throw new InvalidOperationException("unknown verdict"),
        };
    }

    /// <summary>
    /// Starts an operation: feeds <paramref name="e"/> and returns the operation's slot and a task that
    /// completes with its verdict when its turn comes (at once when it is its turn already).
    /// </summary>
    private (int Slot, Task<Verdict> Turn) Start(ConnEvent e, Phase phase, int? knownSlot)
    {
        List<(TaskCompletionSource<Verdict>, Verdict)>? wake = null;
        int slot = knownSlot ?? -1;
        Verdict? mine = null;
        TaskCompletionSource<Verdict>? tcs = null;
        lock (gate)
        {
            var actions = StepLocked(e, ref wake);
            foreach (var a in actions)
            {
                if (a is ConnAction.Assigned assigned) slot = assigned.Slot;
            }
            foreach (var a in actions)
            {
                if (a is ConnAction.Grant g && g.Slot == slot && g.Phase.Equals(phase)) mine = g.Verdict;
            }
            if (mine is null)
            {
                tcs = new TaskCompletionSource<Verdict>(TaskCreationOptions.RunContinuationsAsynchronously);
                waiters[(phase, slot)] = tcs;
            }
        }
        Wake(wake);
        return (slot, mine is not null ? Task.FromResult(mine) : tcs!.Task);
    }

    /// <summary>
    /// Waits for an operation's turn. When <paramref name="ct"/> fires first, the operation still takes
    /// its turn later (order is never broken) and then fails at once, which breaks its side of the
    /// connection: the bytes it would have moved are unaccounted for.
    /// </summary>
    private async ValueTask<Verdict> AwaitTurnAsync(Task<Verdict> turn, Phase phase, int slot, CancellationToken ct)
    {
        if (turn.IsCompleted) return turn.Result;
        try
        {
            return await turn.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException oce) when (ct.IsCancellationRequested)
        {
            _ = turn.ContinueWith(
                t =>
                {
                    if (!t.Result.IsProceed) return;
                    Step(ConnEvent.NewFailed(phase, slot, ConnError.NewTransport(oce)));
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
            throw;
        }
    }

    private FSharpList<ConnAction> StepLocked(ConnEvent e, ref List<(TaskCompletionSource<Verdict>, Verdict)>? wake)
    {
        var result = Connection.step(state, e);
        if (result.IsError) throw Error(result.ErrorValue);
        state = result.ResultValue.Item1;
        var actions = result.ResultValue.Item2;
        foreach (var a in actions)
        {
            if (a is ConnAction.Grant g && waiters.Remove((g.Phase, g.Slot), out var tcs))
            {
                (wake ??= new()).Add((tcs, g.Verdict));
            }
        }
        return actions;
    }

    private static void Wake(List<(TaskCompletionSource<Verdict>, Verdict)>? wake)
    {
        if (wake is null) return;
        foreach (var (tcs, v) in wake) tcs.TrySetResult(v);
    }

    /// <summary>Reports a failed operation to the core and returns the exception to throw.</summary>
    public Exception Fail(Phase phase, int slot, ConnError error, Exception? original = null)
    {
        Step(ConnEvent.NewFailed(phase, slot, error));
        return original ?? Error(error);
    }

    /// <summary>Reports a read that ended with the input and returns the exception to throw.</summary>
    public Exception Ended(int slot, long buffered)
    {
        Step(ConnEvent.NewInputEnded(slot, buffered));
        return Error(State.ReadError.Value);
    }

    /// <summary>The body stream a new message reads from; the next read drains it first.</summary>
    public BodyReadStream NewBody(Framing.BodyLength framing, bool isRequest, Action<Headers>? onTrailers, Func<CancellationToken, ValueTask>? beforeFirstRead)
    {
        var body = new BodyReadStream(Reader, framing, isRequest, Settings, onTrailers, beforeFirstRead,
            e => Step(ConnEvent.NewBodyFailed(e)), objectName);
        lastBody = body;
        return body;
    }

    /// <summary>Reads and drops what the previous body left unread, up to the drain limit.</summary>
    public async ValueTask DrainPreviousAsync(Phase phase, int slot, CancellationToken ct)
    {
        var body = lastBody;
        lastBody = null;
        if (body is null) return;
        bool finished;
        try
        {
            finished = await body.DrainAsync(MaxDrainBytes, ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            var read = State.ReadError;
            Step(ConnEvent.NewFailed(phase, slot, read.IsSome ? read.Value : ConnError.NewTransport(ex)));
            throw;
        }
        if (!finished)
        {
            var limit = ConnError.NewDrainLimit(MaxDrainBytes);
            Step(ConnEvent.NewFailed(phase, slot, limit));
            Close();
            throw Error(limit);
        }
    }

    /// <summary>Reads one head with <paramref name="parse"/>, consuming exactly its bytes.</summary>
    private async ValueTask<HeadRead<T>> ReadHeadAsync<T>(
        Func<ParserSettings, ReadOnlySequence<byte>, FSharpResult<Incremental<Parsed<T>>, HttpError>> parse,
        Action? onFirstByte, CancellationToken ct)
    {
        while (true)
        {
            var rr = await Reader.ReadAsync(ct).ConfigureAwait(false);
            if (rr.IsCanceled) throw new OperationCanceledException("the pending read was cancelled");
            var buffer = rr.Buffer;
            if (onFirstByte is not null && !buffer.IsEmpty)
            {
                onFirstByte();
                onFirstByte = null;
            }
            var result = parse(Settings, buffer);
            if (result.IsError)
            {
                Reader.AdvanceTo(buffer.Start);
                return new HeadRead<T>(null, result.ErrorValue, 0);
            }
            var inc = result.ResultValue;
            if (inc.IsComplete)
            {
                Reader.AdvanceTo(buffer.GetPosition(inc.Consumed));
                return new HeadRead<T>(inc.Value, null, 0);
            }
            Reader.AdvanceTo(buffer.Start, buffer.End);
            if (rr.IsCompleted) return new HeadRead<T>(null, null, buffer.Length);
        }
    }

    /// <summary>
    /// Reads one head for the running operation of <paramref name="slot"/>. A parse error, the end of
    /// the input or an I/O failure is reported to the core (breaking the read side) and thrown.
    /// </summary>
    public async ValueTask<Parsed<T>> ReadHeadOrFailAsync<T>(Phase phase, int slot,
        Func<ParserSettings, ReadOnlySequence<byte>, FSharpResult<Incremental<Parsed<T>>, HttpError>> parse,
        Action? onFirstByte, CancellationToken ct)
    {
        HeadRead<T> h;
        try
        {
            h = await ReadHeadAsync(parse, onFirstByte, ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Step(ConnEvent.NewFailed(phase, slot, ConnError.NewTransport(ex)));
            throw;
        }
        if (h.Error is { } e) throw Fail(phase, slot, ConnError.NewMalformed(e));
        if (h.Parsed is null) throw Ended(slot, h.EndedAfter);
        return h.Parsed;
    }

    /// <summary>Writes a server response for the running write of <paramref name="slot"/>; a failure is
    /// reported to the core (breaking the write side) and rethrown; success is reported as written.</summary>
    public async ValueTask WriteResponseAsync(int slot, ResponseHead head, HttpContent? content, Framing.BodyLength plan,
        Func<Headers> trailers, CancellationToken ct)
    {
        try
        {
            var wrote = Serializer.writeResponse(Writer, head);
            if (wrote.IsError) throw new InvalidOperationException(wrote.ErrorValue.Message);
            await MessageMapping.WriteBodyAsync(Writer, content, plan, trailers, ct).ConfigureAwait(false);
            await MessageMapping.FlushAsync(Writer, ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Step(ConnEvent.NewFailed(Phase.ResponsePhase, slot, ConnError.NewTransport(ex)));
            throw;
        }
        Step(ConnEvent.NewWrote(slot));
    }

    /// <summary>
    /// Writes a client request for the running write of <paramref name="slot"/>, firing the trace's write
    /// hooks. With <paramref name="expectTimeout"/> set, a request that says <c>Expect: 100-continue</c> sends
    /// its head, then waits for the server's answer (at most that long) before its body, when the core
    /// allows (its response is the next to be read) and the previous body has been read. A final answer
    /// instead of <c>100 Continue</c> leaves the body unsent and ends the connection after this exchange.
    /// </summary>
    public async ValueTask WriteRequestAsync(int slot, RequestHead head, HttpContent? content, Framing.BodyLength plan,
        ClientTrace? trace, TimeSpan? expectTimeout, CancellationToken ct)
    {
        var bodySent = true;
        try
        {
            var wrote = Serializer.writeRequest(Writer, head);
            if (wrote.IsError) throw new InvalidOperationException(wrote.ErrorValue.Message);
            if (trace is not null)
            {
                if (trace.WroteHeaderField is { } field)
                {
                    foreach (var f in head.Headers.AsSpan()) Hooks.Fire(nameof(ClientTrace.WroteHeaderField), field, f.Name, (IReadOnlyList<string>)[f.Value]);
                }
                Hooks.Fire(nameof(ClientTrace.WroteHeaders), trace.WroteHeaders);
            }
            var hasBody = content is not null && !plan.IsNoBody && plan is not Framing.BodyLength.ContentLength { Item: 0 };
            if (expectTimeout is { } timeout && hasBody && Connection.expectsContinue(head) && MayAwaitContinue(slot))
            {
                await MessageMapping.FlushAsync(Writer, ct).ConfigureAwait(false);
                Hooks.Fire(nameof(ClientTrace.Wait100Continue), trace?.Wait100Continue);
                bodySent = await AwaitContinueAsync(slot, trace, timeout, ct).ConfigureAwait(false);
            }
            if (bodySent) await MessageMapping.WriteBodyAsync(Writer, content, plan, null, ct).ConfigureAwait(false);
            await MessageMapping.FlushAsync(Writer, ct).ConfigureAwait(false);
            if (trace?.WroteRequest is { } wroteRequest) Hooks.Fire(nameof(ClientTrace.WroteRequest), wroteRequest, new WroteRequestInfo(null));
        }
        catch (Exception ex)
        {
            Step(ConnEvent.NewFailed(Phase.RequestPhase, slot, ConnError.NewTransport(ex)));
            if (ex is not ClientTraceException && trace?.WroteRequest is { } wroteRequest)
            {
                try { wroteRequest(new WroteRequestInfo(ex)); }
                catch (Exception hookEx) { throw new ClientTraceException(nameof(ClientTrace.WroteRequest), hookEx); }
            }
            throw;
        }
        if (!bodySent) Step(ConnEvent.StopWriting);
        Step(ConnEvent.NewWrote(slot));
    }

    private bool MayAwaitContinue(int slot)
    {
        lock (gate)
        {
            return Connection.mayAwaitContinue(slot, state) && (lastBody is null || lastBody.IsFinished);
        }
    }

    /// <summary>The responses to one request: whether its first byte was seen, and the interim heads read
    /// while its body waited for <c>100 Continue</c>.</summary>
    internal sealed class ResponseProgress
    {
        public bool FirstByteSeen;
        public List<ResponseHead> Interim { get; } = [];
    }

    private readonly Dictionary<int, ResponseProgress> progress = [];

    /// <summary>What was seen of the response to <paramref name="slot"/> while its body waited for
    /// <c>100 Continue</c> (forgotten now); null when there was no such wait.</summary>
    public ResponseProgress? TakeProgress(int slot)
    {
        lock (gate)
        {
            return progress.Remove(slot, out var p) ? p : null;
        }
    }

    /// <summary>
    /// Peeks at the response while a body waits: true to send the body (100 Continue, or no answer in
    /// time), false when a final answer (or an error, or the end of input) came first; that is left unread
    /// for the response read. Interim responses other than 100 are consumed, reported and kept for it.
    /// </summary>
    private async ValueTask<bool> AwaitContinueAsync(int slot, ClientTrace? trace, TimeSpan timeout, CancellationToken ct)
    {
        var seen = new ResponseProgress();
        lock (gate) progress[slot] = seen;
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timer.CancelAfter(timeout);
        while (true)
        {
            ReadResult rr;
            try
            {
                rr = await Reader.ReadAsync(timer.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return true; // no answer in time: send the body (RFC 9110 section 10.1.1)
            }
            var buffer = rr.Buffer;
            if (!buffer.IsEmpty && !seen.FirstByteSeen)
            {
                seen.FirstByteSeen = true;
                Hooks.Fire(nameof(ClientTrace.GotFirstResponseByte), trace?.GotFirstResponseByte);
            }
            var parsed = Parser.parseResponseHead(Settings, buffer);
            if (parsed.IsOk && parsed.ResultValue.IsComplete && Connection.isInterim(parsed.ResultValue.Value.Head.Status))
            {
                var head = parsed.ResultValue.Value.Head;
                Reader.AdvanceTo(buffer.GetPosition(parsed.ResultValue.Consumed));
                if (head.Status == 100)
                {
                    Hooks.Fire(nameof(ClientTrace.Got100Continue), trace?.Got100Continue);
                    return true;
                }
                seen.Interim.Add(head);
                if (Hooks.Ask(nameof(ClientTrace.Got1xxResponse), trace?.Got1xxResponse, head.Status, head.Headers) is { } abort) throw abort;
                continue;
            }
            if (parsed.IsOk && !parsed.ResultValue.IsComplete && !rr.IsCompleted)
            {
                Reader.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }
            // A final response, an error or the end of input: leave it all for the response read.
            Reader.AdvanceTo(buffer.Start);
            return false;
        }
    }

    /// <summary>Hands the stream and the reader (with any unread input) to the caller.</summary>
    public HijackedConnection Hijack()
    {
        Step(ConnEvent.HijackRequested);
        StopSending(TimeSpan.FromSeconds(5));
        return new HijackedConnection(Stream, Reader);
    }

    /// <summary>Closes the connection; a second call does nothing.</summary>
    public void Close()
    {
        foreach (var a in Step(ConnEvent.CloseRequested))
        {
            if (a.IsCloseTransport) CloseTransport();
        }
    }

    /// <summary>Closes the connection asynchronously; a second call does nothing.</summary>
    public async ValueTask CloseAsync()
    {
        foreach (var a in Step(ConnEvent.CloseRequested))
        {
            if (a.IsCloseTransport)
            {
                try
                {
                    await Writer.CompleteAsync().ConfigureAwait(false);
                    await sendLoop.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is InvalidOperationException or TimeoutException)
                {
                    // A write is still running, or the peer does not read: close anyway.
                }
                if (ownsReader) await Reader.CompleteAsync().ConfigureAwait(false);
                await Stream.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private void CloseTransport()
    {
        StopSending(TimeSpan.FromSeconds(1));
        if (ownsReader) Reader.Complete();
        Stream.Dispose();
    }
}
