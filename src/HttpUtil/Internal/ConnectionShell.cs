using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// The I/O shell shared by <see cref="ClientConn"/> and <see cref="ServerConn"/>, composed of one part per job:
/// the <see cref="TurnGate"/> (the core's state machine and the waiting operations), the <see cref="SendLoop"/>
/// (output pipe to the wire), the <see cref="HeadReader"/>, the <see cref="MessageWriter"/>, and here the
/// bodies in flight, the slot of each pending request, and hijack and close. It makes no protocol decision.
/// </summary>
internal sealed class ConnectionShell
{
    private const int ReadBufferSize = 32 * 1024;
    private readonly object gate = new();
    private readonly Dictionary<HttpRequestMessage, int> slots = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<int, InterimTally> tallies = [];
    private readonly bool ownsReader;
    private readonly bool client;
    private readonly SendLoop send;
    private BodyReadStream? lastBody;
    private Task? closing;

    public ConnectionShell(bool client, Stream stream, PipeReader? reader, string objectName)
    {
        ArgumentNullException.ThrowIfNull(stream);
        this.client = client;
        Stream = stream;
        ownsReader = reader is null;
        // Reads ask the stream for up to 32 KiB at a time: a large body comes in a few receives, not one per 4 KiB
        // (the default). The buffer is rented only while a read is under way, so an idle connection holds none.
        Reader = reader ?? PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: ReadBufferSize, minimumReadSize: 2048, leaveOpen: true));
        Gate = new TurnGate(new ConnectionMachine(client, objectName));
        send = new SendLoop(stream, ex => Gate.Step(static (m, e) => m.SendFailed(e), ex)) { StallTimeout = TimeSpan.FromSeconds(30) };
        Heads = new HeadReader(Reader, Gate);
        Messages = new MessageWriter(send.Writer, Gate, Heads);
    }

    public Stream Stream { get; }
    public PipeReader Reader { get; }
    public TurnGate Gate { get; }
    public HeadReader Heads { get; }
    public MessageWriter Messages { get; }

    public ParserSettings Settings
    {
        get => Heads.Settings;
        set => Heads.Settings = value;
    }

    public long MaxDrainBytes { get; set; } = 256 * 1024;

    public TimeSpan FlushTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a read of a body may wait for its next byte (null for no limit; positive).</summary>
    public TimeSpan? BodyIdleTimeout
    {
        get => bodyIdle;
        set
        {
            bodyIdle = TimeLimit.PositiveOrNone(value);
            bodyDeadlines = NewBodyDeadlines();
        }
    }

    /// <summary>The slowest a request body may arrive (server only; null for no minimum).</summary>
    public MinDataRate? MinRequestBodyDataRate
    {
        get => bodyRate;
        set
        {
            bodyRate = value;
            bodyDeadlines = NewBodyDeadlines();
        }
    }

    private TimeSpan? bodyIdle;
    private MinDataRate? bodyRate;
    private BodyDeadlines? bodyDeadlines;

    /// <summary>What bodies read here are timed by: nothing; on a client, the heartbeat's <see cref="IdleWatch"/> (an
    /// expiry closes the connection); on a server, a deadline per read, with the rate (an expiry leaves the write side
    /// open for the 408). Its deadline sources are reused from read to read.</summary>
    private BodyDeadlines? NewBodyDeadlines() => (bodyIdle, bodyRate) switch
    {
        (null, null) => null,
        ({ } idle, _) when client => new BodyDeadlines(idle, null, new IdleWatch(idle, Stream)),
        _ => new BodyDeadlines(bodyIdle, bodyRate),
    };

    /// <summary>The slowest the peer may take what is sent (see <see cref="SendLoop.MinRate"/>).</summary>
    public MinDataRate? MinSendDataRate
    {
        get => send.MinRate;
        set => send.MinRate = value;
    }

    /// <summary>How long one send may wait for the peer to take bytes (see <see cref="SendLoop.StallTimeout"/>; null for no
    /// limit; positive).</summary>
    public TimeSpan? SendTimeout
    {
        get => send.StallTimeout;
        set => send.StallTimeout = TimeLimit.PositiveOrNone(value);
    }

    /// <summary>Remembers the slot of a request written (client) or read (server) here.</summary>
    public void RememberSlot(HttpRequestMessage request, int slot)
    {
        lock (gate) slots[request] = slot;
    }

    /// <summary>The slot of <paramref name="request"/>, forgotten now (null: not pending here).</summary>
    public int? TakeSlot(HttpRequestMessage request)
    {
        lock (gate) return slots.Remove(request, out var slot) ? slot : null;
    }

    /// <summary>A new tally of what is seen of the response to <paramref name="slot"/> before its final head.</summary>
    public InterimTally NewTally(int slot)
    {
        var tally = new InterimTally();
        lock (gate) tallies[slot] = tally;
        return tally;
    }

    /// <summary>The tally of <paramref name="slot"/> (forgotten now), or null when its request did not wait for
    /// <c>100 Continue</c> (nothing was seen of its response yet).</summary>
    public InterimTally? TakeTally(int slot)
    {
        lock (gate) return tallies.Count > 0 && tallies.Remove(slot, out var t) ? t : null;
    }

    /// <summary>True when the previous body was read to its end (or there is none).</summary>
    public bool PreviousBodyFinished => lastBody is null || lastBody.IsFinished;

    /// <summary>The body stream a new message reads from; the next read drains it first.</summary>
    public BodyReadStream NewBody(Framing.BodyLength framing, bool isRequest, Action<object?, Headers>? onTrailers, object? trailersState,
        Func<CancellationToken, ValueTask>? beforeFirstRead)
    {
        var body = new BodyReadStream(Reader, framing, isRequest, Settings, onTrailers, trailersState, beforeFirstRead, Gate,
            ownsReader ? Stream : null, bodyDeadlines);
        lastBody = body;
        return body;
    }

    /// <summary>Reads and drops what the previous body left unread, up to the drain limit; beyond it the
    /// connection is closed.</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask DrainPreviousAsync(ExchangePhase phase, int slot, CancellationToken ct)
    {
        var body = lastBody;
        lastBody = null;
        if (body is null || body.IsFinished) return; // nothing left to drop (the usual case)
        bool finished;
        try
        {
            finished = await body.DrainAsync(MaxDrainBytes, ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Gate.Step(static (m, a) => m.FailedAsReadSide(a.phase, a.slot, a.ex), (phase, slot, ex));
            throw;
        }
        if (!finished)
        {
            Gate.Step(static (m, a) => m.DrainLimitExceeded(a.phase, a.slot, a.limit), (phase, slot, limit: MaxDrainBytes));
            Close();
            throw new DrainLimitException(MaxDrainBytes);
        }
    }

    /// <summary>
    /// Hands the stream and the reader (with any unread input) to the caller, once the bytes already written
    /// have been sent (at most <see cref="FlushTimeout"/>; past it, or when sending fails, the connection is
    /// closed and <see cref="IOException"/> says so).
    /// </summary>
    public async ValueTask<HijackedConnection> HijackAsync(CancellationToken ct)
    {
        Gate.Step(static (m, _) => m.HijackRequested(), 0);
        try
        {
            await send.StopAsync(FlushTimeout, ct).ConfigureAwait(false);
        }
        catch
        {
            await CloseTransportAsync().ConfigureAwait(false);
            throw;
        }
        return new HijackedConnection(Stream, Reader);
    }

    /// <summary>Starts closing: waiting operations fail at once; bytes already written are sent (at most
    /// <see cref="FlushTimeout"/>), then the stream is disposed. Returns without waiting. A second call does nothing.</summary>
    public void Close()
    {
        if (Gate.Step(static (m, _) => m.CloseRequested(), 0).CloseTransport) StartClosing();
    }

    /// <summary>
    /// Closes as <see cref="Close"/> does and waits for it. Throws <see cref="IOException"/> when bytes already
    /// written could not be sent (the stream is disposed all the same), unless <paramref name="quiet"/>.
    /// </summary>
    public async ValueTask CloseAsync(bool quiet, CancellationToken ct)
    {
        Task task;
        if (Gate.Step(static (m, _) => m.CloseRequested(), 0).CloseTransport) task = StartClosing();
        else
        {
            lock (gate) task = closing ?? Task.CompletedTask;
        }
        try
        {
            await task.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (IOException) when (quiet)
        {
            // Dispose reports nothing; CloseAsync does.
        }
    }

    private Task StartClosing()
    {
        lock (gate)
        {
            if (closing is null)
            {
                closing = CloseWithFlushAsync();
                // Close() has nobody to report to; CloseAsync awaits the same task and reports.
                closing.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                    TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
            return closing;
        }
    }

    private async Task CloseWithFlushAsync()
    {
        await Task.Yield(); // never run the close on the caller's stack
        try
        {
            await send.StopAsync(FlushTimeout, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            await CloseTransportAsync().ConfigureAwait(false);
        }
    }

    private async ValueTask CloseTransportAsync()
    {
        if (ownsReader) await Reader.CompleteAsync().ConfigureAwait(false);
        await Stream.DisposeAsync().ConfigureAwait(false);
    }
}
