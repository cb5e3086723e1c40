using System.Net.Sockets;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>Where a pooled connection goes: scheme, host and port, and the proxy it goes through.</summary>
internal readonly record struct PoolKey(string Scheme, string Host, int Port, string Proxy)
{
    public string HostPort => Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

/// <summary>One connection a <see cref="Transport"/> owns.</summary>
internal sealed class PooledConnection(Transport owner, HostPool pool, PoolKey key, Socket socket, Stream stream, ClientConn client)
{
    /// <summary>The transport and the pool the connection belongs to (it goes back there when a body ends).</summary>
    public Transport Owner { get; } = owner;
    public HostPool Pool { get; } = pool;
    public PoolKey Key { get; } = key;
    public Socket Socket { get; } = socket;
    public Stream Stream { get; } = stream;
    public ClientConn Client { get; } = client;
    public long IdleSince { get; set; }
    public bool Used { get; set; }

    /// <summary>The connection as open_connections and connection.duration count it; null when nothing listened
    /// when it opened.</summary>
    public ConnectionTelemetry? Telemetry { get; init; }

    /// <summary>The body and trace of the exchange running on it (read when the body ends).</summary>
    public BodyReadStream? Body { get; set; }
    public ClientTrace? Trace { get; set; }

    /// <summary>False when the peer closed the idle connection (or sent bytes nobody asked for).</summary>
    public bool LooksAlive()
    {
        try
        {
            return !Socket.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    public void Close()
    {
        Telemetry?.Closed();
        Client.Close();
    }
}

/// <summary>
/// The connections to one <see cref="PoolKey"/>: idle ones (most recently used first), a count of all
/// (for MaxConnsPerHost) and the requests waiting for one.
/// </summary>
internal sealed class HostPool(int maxIdle, int maxConns, TimeSpan idleTimeout, TimeSpan probeAfter, TimeProvider time)
{
    private readonly object gate = new();
    private readonly List<PooledConnection> idle = [];
    private readonly Queue<TaskCompletionSource<PooledConnection?>> waiters = new();
    private int total;

    /// <summary>What an acquisition found.</summary>
    public readonly record struct Lease(PooledConnection? Connection, bool WasIdle, TimeSpan IdleTime, bool Queued = false);

    /// <summary>
    /// An idle connection (unless <paramref name="fresh"/>; polled first when the core says so for a request that is
    /// <paramref name="resendable"/> or not), or permission to dial (a lease with no
    /// connection), or, at MaxConnsPerHost, a wait for a connection handed over or a freed place.
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Lease> AcquireAsync(bool fresh, bool resendable, CancellationToken ct)
    {
        TaskCompletionSource<PooledConnection?> waiter;
        while (true)
        {
            PooledConnection? candidate = null;
            lock (gate)
            {
                if (!fresh && idle.Count > 0)
                {
                    candidate = idle[^1];
                    idle.RemoveAt(idle.Count - 1);
                }
                else if (maxConns <= 0 || total < maxConns)
                {
                    total++;
                    return new Lease(null, false, TimeSpan.Zero);
                }
                else
                {
                    waiter = new TaskCompletionSource<PooledConnection?>(TaskCreationOptions.RunContinuationsAsynchronously);
                    waiters.Enqueue(waiter);
                    break;
                }
            }
            // Checked outside the lock (a poll is a system call; every request of this host takes the lock), and only
            // when the core asks for it (a request that could not be sent again, or a connection idle for a while).
            var idleFor = TimeSpanSince(candidate.IdleSince);
            if (idleFor < idleTimeout && (!CoreAdapter.ProbesIdleConnection(idleFor, probeAfter, resendable) || candidate.LooksAlive()))
            {
                candidate.Telemetry?.Active();
                return new Lease(candidate, true, idleFor);
            }
            candidate.Close();
            lock (gate) total--;
        }
        using (ct.Register(() => waiter.TrySetCanceled(ct)))
        {
            var handed = await waiter.Task.ConfigureAwait(false);
            return new Lease(handed, false, TimeSpan.Zero, Queued: true);
        }
    }

    private TimeSpan TimeSpanSince(long timestamp) => time.GetElapsedTime(timestamp);

    /// <summary>Puts a connection back: handed to a waiting request, or kept idle; or an error saying why not
    /// (the caller then closes it with <see cref="Discard"/>).</summary>
    public Exception? Put(PooledConnection c)
    {
        lock (gate)
        {
            while (waiters.Count > 0)
            {
                if (waiters.Dequeue().TrySetResult(c)) return null;
            }
            if (idle.Count >= maxIdle)
                return new InvalidOperationException($"too many idle connections for {c.Key.HostPort} (MaxIdleConnsPerHost {maxIdle})");
            c.IdleSince = time.GetTimestamp();
            idle.Add(c);
            c.Telemetry?.Idle();
            return null;
        }
    }

    /// <summary>Forgets a connection (closed, failed, or never dialled): its place goes to a waiter, which dials.</summary>
    public void Discard(PooledConnection? c)
    {
        c?.Close();
        GiveUpPlace();
    }

    /// <summary>Forgets a connection that was taken over (after a protocol switch): it stays open, its place
    /// goes to a waiter.</summary>
    public void Forget(PooledConnection c)
    {
        c.Telemetry?.Closed();
        GiveUpPlace();
    }

    private void GiveUpPlace()
    {
        lock (gate)
        {
            total--;
            while (waiters.Count > 0)
            {
                if (waiters.Dequeue().TrySetResult(null))
                {
                    total++;
                    return;
                }
            }
        }
    }

    /// <summary>Takes <paramref name="c"/> out of the idle list again and closes it (nothing when it is not idle).</summary>
    public void TakeBack(PooledConnection c)
    {
        lock (gate)
        {
            if (!idle.Remove(c)) return;
            total--;
        }
        c.Close();
    }

    /// <summary>Closes idle connections past the idle timeout (all of them when <paramref name="all"/>).</summary>
    public void Sweep(bool all)
    {
        List<PooledConnection> closing = [];
        lock (gate)
        {
            for (var i = idle.Count - 1; i >= 0; i--)
            {
                if (all || TimeSpanSince(idle[i].IdleSince) >= idleTimeout)
                {
                    closing.Add(idle[i]);
                    idle.RemoveAt(i);
                    total--;
                }
            }
        }
        foreach (var c in closing) c.Close();
    }

    /// <summary>Idle connections now.</summary>
    public int IdleCount
    {
        get { lock (gate) return idle.Count; }
    }
}
