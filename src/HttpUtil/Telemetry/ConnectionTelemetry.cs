using System.Diagnostics;

namespace HttpUtil;

/// <summary>
/// One pooled connection as <c>http.client.open_connections</c> and <c>http.client.connection.duration</c> see it:
/// opened active, then moving between active and idle, then closed once. Made only when one of the two instruments is
/// enabled when the connection opens (<see cref="Open"/> returns null otherwise).
/// </summary>
internal sealed class ConnectionTelemetry
{
    private readonly long opened = Stopwatch.GetTimestamp();
    private readonly TagList tags;
    private readonly object gate = new();
    // Counted in open_connections only when that was enabled at the start, so that the sum stays balanced.
    private readonly bool counted = HttpUtilTelemetry.OpenConnections.Enabled;
    private string? state;

    private ConnectionTelemetry(PoolKey key, string? peer)
    {
        tags = new TagList
        {
            { "server.address", key.Host }, { "server.port", key.Port }, { "url.scheme", key.Scheme }, { "network.protocol.version", "1.1" },
        };
        if (peer is not null) tags.Add("network.peer.address", peer);
    }

    private const string ActiveState = "active";
    private const string IdleState = "idle";
    private const string ClosedState = "closed";

    /// <summary>A new connection, counted as active; null when nothing listens.</summary>
    public static ConnectionTelemetry? Open(PoolKey key, string? peer)
    {
        if (!HttpUtilTelemetry.OpenConnections.Enabled && !HttpUtilTelemetry.ConnectionDuration.Enabled) return null;
        var t = new ConnectionTelemetry(key, peer);
        t.Move(ActiveState);
        return t;
    }

    /// <summary>The connection carries a request.</summary>
    public void Active() => Move(ActiveState);

    /// <summary>The connection waits in the idle pool.</summary>
    public void Idle() => Move(IdleState);

    /// <summary>The connection closed (or left the pool after a protocol switch); later calls do nothing.</summary>
    public void Closed()
    {
        if (Move(ClosedState) && HttpUtilTelemetry.ConnectionDuration.Enabled)
            HttpUtilTelemetry.ConnectionDuration.Record(HttpUtilTelemetry.SecondsSince(opened), tags);
    }

    /// <summary>Moves to <paramref name="to"/>, counting the connection out of its old state and into the new one (a
    /// closed connection is in none); false when it had closed already.</summary>
    private bool Move(string to)
    {
        string? from;
        lock (gate)
        {
            from = state;
            if (from == ClosedState) return false;
            if (from == to) return true;
            state = to;
        }
        if (counted)
        {
            if (from is not null) Add(-1, from);
            if (to != ClosedState) Add(1, to);
        }
        return true;
    }

    private void Add(long delta, string s)
    {
        var t = tags;
        t.Add("http.connection.state", s);
        HttpUtilTelemetry.OpenConnections.Add(delta, t);
    }
}
