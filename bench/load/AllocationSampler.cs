using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

namespace HttpUtil.Load;

/// <summary>
/// The runtime's allocation samples (GCAllocationTick: one event per about 100 KB allocated, naming the type
/// that crossed the mark), counted by type: a cheap profile of what a workload allocates. Start it at the start
/// of the window; <see cref="Top"/> gives the types with the most samples.
/// </summary>
internal sealed class AllocationSampler : EventListener
{
    private const EventKeywords GcKeyword = (EventKeywords)0x1;
    private readonly ConcurrentDictionary<string, long> samples = new();
    private volatile bool on;

    public void Start() => on = true;

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime") EnableEvents(source, EventLevel.Verbose, GcKeyword);
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (!on || e.EventName is null || !e.EventName.StartsWith("GCAllocationTick", StringComparison.Ordinal) || e.Payload is null) return;
        var i = e.PayloadNames!.IndexOf("TypeName");
        if (i >= 0 && e.Payload[i] is string type) samples.AddOrUpdate(type, 1, static (_, n) => n + 1);
    }

    /// <summary>The <paramref name="n"/> types with the most samples, with their share of all samples.</summary>
    public IEnumerable<(string Type, double Share)> Top(int n)
    {
        var all = samples.ToArray();
        double total = Math.Max(1, all.Sum(kv => kv.Value));
        return all.OrderByDescending(kv => kv.Value).Take(n).Select(kv => (kv.Key, kv.Value / total));
    }
}
