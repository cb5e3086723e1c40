using System.Diagnostics;

namespace HttpUtil;

/// <summary>
/// The response-body idle timeout of one client connection, checked by a heartbeat instead of a timer per read (as
/// Kestrel checks its timeouts): a read marks when it starts waiting and clears the mark when it returns, which costs
/// two writes; one process-wide heartbeat, four times a second, finds a wait older than the limit and ends it by
/// disposing the connection's stream. The connection is broken then (never pooled), and the read reports the
/// timeout. Expiry comes between the limit and a quarter of a second after it.
/// </summary>
internal sealed class IdleWatch(TimeSpan limit, Stream stream)
{
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(250);
    private static readonly List<WeakReference<IdleWatch>> Watched = [];
    private static Timer? heartbeat;

    private readonly long limitTicks = (long)(limit.TotalSeconds * Stopwatch.Frequency);
    private long waitingSince;
    private volatile bool expired;
    private bool registered;

    /// <summary>The longest a read may wait.</summary>
    public TimeSpan Limit { get; } = limit;

    /// <summary>True once a wait outlasted the limit and the stream was disposed for it.</summary>
    public bool Expired => expired;

    /// <summary>A read starts waiting (the first one registers the connection with the heartbeat; a connection is
    /// dropped from it once collected).</summary>
    public void Begin()
    {
        if (!registered) Register();
        Volatile.Write(ref waitingSince, Stopwatch.GetTimestamp());
    }

    /// <summary>The read returned (with bytes, the end, or an error).</summary>
    public void End() => Volatile.Write(ref waitingSince, 0);

    private void Register()
    {
        registered = true;
        lock (Watched)
        {
            Watched.Add(new WeakReference<IdleWatch>(this));
            heartbeat ??= new Timer(static _ => Beat(), null, Period, Period);
        }
    }

    private static void Beat()
    {
        var now = Stopwatch.GetTimestamp();
        List<IdleWatch>? due = null;
        lock (Watched)
        {
            for (var i = Watched.Count - 1; i >= 0; i--)
            {
                if (!Watched[i].TryGetTarget(out var watch)) Watched.RemoveAt(i);
                else if (watch.IsOverdue(now)) (due ??= []).Add(watch);
            }
        }
        if (due is null) return;
        foreach (var watch in due) watch.Expire();
    }

    private bool IsOverdue(long now)
    {
        var since = Volatile.Read(ref waitingSince);
        return since != 0 && !expired && now - since >= limitTicks;
    }

    private void Expire()
    {
        expired = true;
        try
        {
            stream.Dispose();
        }
        catch (Exception)
        {
            // The heartbeat must go on; the stream is being torn down either way.
        }
    }
}
