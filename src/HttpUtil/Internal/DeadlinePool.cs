using System.Collections.Concurrent;

namespace HttpUtil;

/// <summary>
/// Cancellation sources for deadlines that also follow a caller's token, reused from one operation to the next
/// (<see cref="CancellationTokenSource.TryReset"/>) so a deadline per request or per read costs no allocation once
/// warm. <see cref="Start"/> arms one; <see cref="Finish"/> unlinks it and keeps it for the next operation unless
/// it fired, the pool is full, or the caller says a token may still be held by someone else.
/// </summary>
internal sealed class DeadlinePool(int capacity)
{
    private readonly ConcurrentQueue<CancellationTokenSource> spare = new();

    /// <summary>A source that cancels after <paramref name="limit"/> (never for <see cref="Timeout.InfiniteTimeSpan"/>)
    /// or when <paramref name="caller"/> does.</summary>
    public Deadline Start(CancellationToken caller, TimeSpan limit)
    {
        if (!spare.TryDequeue(out var source)) source = new CancellationTokenSource();
        var link = caller.CanBeCanceled ? caller.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), source) : default;
        if (limit != Timeout.InfiniteTimeSpan) source.CancelAfter(limit);
        return new Deadline(source, link);
    }

    /// <summary>Ends <paramref name="deadline"/>; its source is kept for reuse when <paramref name="reusable"/>, it did
    /// not fire, and there is room.</summary>
    public void Finish(Deadline deadline, bool reusable = true)
    {
        deadline.Link.Dispose();
        var source = deadline.Source;
        if (reusable && spare.Count < capacity && source.TryReset()) spare.Enqueue(source);
        else source.Dispose();
    }
}

/// <summary>One armed deadline from a <see cref="DeadlinePool"/>.</summary>
internal readonly record struct Deadline(CancellationTokenSource Source, CancellationTokenRegistration Link)
{
    /// <summary>Cancelled when the time passed or the caller cancelled.</summary>
    public CancellationToken Token => Source.Token;
}

/// <summary>The deadlines a connection sets once for every body it reads: the idle timeout (longest wait for a next
/// byte) and, for request bodies, the minimum data rate, with the pool their sources come from (or, for response
/// bodies, the heartbeat's <see cref="IdleWatch"/>). One reference per body stream.</summary>
internal sealed class BodyDeadlines(TimeSpan? idle, MinDataRate? rate, IdleWatch? watch = null)
{
    /// <summary>The longest a body read may wait (the <see cref="CancellationTokenSource.CancelAfter(TimeSpan)"/> bound).</summary>
    private static readonly TimeSpan Longest = TimeSpan.FromMilliseconds(int.MaxValue - 1);

    public TimeSpan? Idle { get; } = idle;
    public MinDataRate? Rate { get; } = rate;
    /// <summary>The deadline sources of per-read deadlines (made on first use: a client's bodies, timed by the
    /// <see cref="Watch"/>, never need one).</summary>
    public DeadlinePool Pool => pool ??= new(1);

    private DeadlinePool? pool;

    /// <summary>For a client connection's response bodies: the heartbeat-checked idle timeout used instead of a
    /// deadline per read (the connection is closed when it expires, so there is no write side to keep).</summary>
    public IdleWatch? Watch { get; } = watch;

    /// <summary>How long the next read of a body may wait, <paramref name="bytes"/> of it having come in
    /// <paramref name="waited"/> of waiting, and whether the rate (rather than the idle timeout) sets that limit.</summary>
    public (TimeSpan Limit, bool ByRate) NextWait(long bytes, TimeSpan waited)
    {
        var limit = Idle ?? Timeout.InfiniteTimeSpan;
        if (Rate is not { } rate) return (limit, false);
        var allowance = rate.Allowance(bytes, waited);
        if (allowance > Longest) return (limit, false);
        if (allowance < TimeSpan.FromMilliseconds(1)) allowance = TimeSpan.FromMilliseconds(1);
        return Idle is null || allowance < limit ? (allowance, true) : (limit, false);
    }
}
