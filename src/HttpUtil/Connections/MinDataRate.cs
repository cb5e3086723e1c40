namespace HttpUtil;

/// <summary>
/// The slowest a peer may send a body: <see cref="BytesPerSecond"/> on average over the time the application spent
/// waiting for it, enforced once that time passes <see cref="GracePeriod"/> (Kestrel's <c>MinDataRate</c>). A client
/// that trickles a byte just before each idle timeout would otherwise hold a connection and its handler for as long
/// as it likes; this bounds the time a body of n bytes can take to about max(<see cref="GracePeriod"/>,
/// n / <see cref="BytesPerSecond"/>).
/// </summary>
/// <remarks>Only time spent waiting on a read counts: a handler that reads slowly (or stops reading) is never held
/// against the client, as in Kestrel.</remarks>
public sealed record MinDataRate
{
    /// <summary>A minimum rate of <paramref name="bytesPerSecond"/>, enforced after <paramref name="gracePeriod"/> of waiting.</summary>
    /// <param name="bytesPerSecond">The average rate the body must keep up; greater than zero.</param>
    /// <param name="gracePeriod">Waiting time before the rate is enforced, for slow starts (TCP slow start, a client
    /// still preparing its body); zero or more.</param>
    /// <exception cref="ArgumentOutOfRangeException">A rate that is not positive and finite, or a negative grace period.</exception>
    public MinDataRate(double bytesPerSecond, TimeSpan gracePeriod)
    {
        if (!(bytesPerSecond > 0) || double.IsInfinity(bytesPerSecond))
            throw new ArgumentOutOfRangeException(nameof(bytesPerSecond), bytesPerSecond, "the rate must be positive and finite");
        ArgumentOutOfRangeException.ThrowIfLessThan(gracePeriod, TimeSpan.Zero);
        BytesPerSecond = bytesPerSecond;
        GracePeriod = gracePeriod;
    }

    /// <summary>Kestrel's default minimum data rate, both ways: 240 bytes per second after a 5 s grace period.</summary>
    internal static MinDataRate KestrelDefault { get; } = new(240, TimeSpan.FromSeconds(5));

    /// <summary>The average rate, in bytes per second of waiting, a body must keep up.</summary>
    public double BytesPerSecond { get; }

    /// <summary>How long the application may wait before the rate is enforced.</summary>
    public TimeSpan GracePeriod { get; }

    /// <summary>How much longer a read may wait, given <paramref name="bytes"/> received after <paramref name="waited"/>
    /// of waiting, before the average falls below the rate (and the grace period is over): zero or less means it
    /// already has. Bytes do not arrive during one wait (a read returns with the first), so the answer holds for the
    /// whole of the next wait.</summary>
    internal TimeSpan Allowance(long bytes, TimeSpan waited)
    {
        var earned = TimeSpan.FromSeconds(Math.Min(bytes / BytesPerSecond, TimeSpan.MaxValue.TotalSeconds / 2));
        return (earned > GracePeriod ? earned : GracePeriod) - waited;
    }
}
