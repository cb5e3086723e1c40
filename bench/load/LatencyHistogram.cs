namespace HttpUtil.Load;

/// <summary>Request latencies in 10 µs buckets up to 2 s (the last bucket holds everything slower);
/// recording allocates nothing, so it does not disturb the allocation count.</summary>
internal sealed class LatencyHistogram
{
    private const int BucketMicros = 10;
    private readonly long[] counts = new long[200_000];

    public void Record(TimeSpan latency)
    {
        var bucket = (long)(latency.TotalMicroseconds / BucketMicros);
        Interlocked.Increment(ref counts[Math.Min(bucket, counts.Length - 1)]);
    }

    public void Clear() => Array.Clear(counts);

    /// <summary>The latency in milliseconds below which <paramref name="fraction"/> of the recorded requests fall.</summary>
    public double Percentile(double fraction)
    {
        long total = 0;
        foreach (var c in counts) total += c;
        if (total == 0) return 0;
        var want = (long)Math.Ceiling(total * fraction);
        long seen = 0;
        for (var i = 0; i < counts.Length; i++)
        {
            seen += counts[i];
            if (seen >= want) return (i + 1) * BucketMicros / 1000.0;
        }
        return counts.Length * BucketMicros / 1000.0;
    }
}
