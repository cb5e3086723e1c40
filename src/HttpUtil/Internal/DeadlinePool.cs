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
        var link = caller.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), source);
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

/// <summary>A deadline per wait that a connection sets once for all its messages (the body idle timeout): the limit and
/// the pool its sources come from. One reference per body stream instead of the pair.</summary>
internal sealed class WaitDeadline(TimeSpan limit)
{
    public TimeSpan Limit { get; } = limit;
    public DeadlinePool Pool { get; } = new(1);
}
