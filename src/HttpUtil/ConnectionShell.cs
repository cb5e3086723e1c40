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
        try
        {
            while (true)
            {
                var rr = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = rr.Buffer;
                foreach (var segment in buffer) await Stream.WriteAsync(segment).ConfigureAwait(false);
                if (!buffer.IsEmpty) await Stream.FlushAsync().ConfigureAwait(false);
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
    /// Starts an operation: feeds <paramref name="e"/> and returns the operation's slot and a task that
    /// completes with its verdict when its turn comes (at once when it is its turn already).
    /// </summary>
    public (int Slot, Task<Verdict> Turn) Start(ConnEvent e, Phase phase, int? knownSlot)
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
    public async ValueTask<Verdict> AwaitTurnAsync(Task<Verdict> turn, Phase phase, int slot, CancellationToken ct)
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
    public async ValueTask<HeadRead<T>> ReadHeadAsync<T>(
        Func<ParserSettings, ReadOnlySequence<byte>, FSharpResult<Incremental<Parsed<T>>, HttpError>> parse,
        CancellationToken ct)
    {
        while (true)
        {
            var rr = await Reader.ReadAsync(ct).ConfigureAwait(false);
            if (rr.IsCanceled) throw new OperationCanceledException("the pending read was cancelled");
            var buffer = rr.Buffer;
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
        CancellationToken ct)
    {
        HeadRead<T> h;
        try
        {
            h = await ReadHeadAsync(parse, ct).ConfigureAwait(false);
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

    /// <summary>Writes a message for the running operation of <paramref name="slot"/>; a failure is
    /// reported to the core (breaking the write side) and rethrown; success is reported as written.</summary>
    public async ValueTask WriteOrFailAsync(Phase phase, int slot, Func<IBufferWriter<byte>, FSharpResult<int, HttpError>> writeHead,
        HttpContent? content, Framing.BodyLength plan, Func<Headers>? trailers, CancellationToken ct)
    {
        try
        {
            await MessageMapping.WriteMessageAsync(Writer, writeHead, content, plan, trailers, ct).ConfigureAwait(false);
            await MessageMapping.FlushAsync(Writer, ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Step(ConnEvent.NewFailed(phase, slot, ConnError.NewTransport(ex)));
            throw;
        }
        Step(ConnEvent.NewWrote(slot));
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
