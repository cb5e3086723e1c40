using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace HttpUtil.Load;

/// <summary>
/// A full listener on HttpUtil's telemetry, as an OpenTelemetry SDK would attach one: every activity of the HttpUtil
/// source sampled with all data and recorded, every instrument of the HttpUtil meter enabled. The measurements are
/// summed (an exporter aggregates too), so what the benchmark sees is the cost of producing them.
/// </summary>
internal sealed class TelemetryListener : IDisposable
{
    private readonly ActivityListener activities;
    private readonly MeterListener meters = new();
    private long activityCount, measurementCount;

    public TelemetryListener()
    {
        activities = new ActivityListener
        {
            ShouldListenTo = s => s.Name == HttpUtilTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _ => Interlocked.Increment(ref activityCount),
        };
        ActivitySource.AddActivityListener(activities);
        meters.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == HttpUtilTelemetry.Name) l.EnableMeasurementEvents(instrument);
        };
        meters.SetMeasurementEventCallback<double>((_, _, _, _) => Interlocked.Increment(ref measurementCount));
        meters.SetMeasurementEventCallback<long>((_, _, _, _) => Interlocked.Increment(ref measurementCount));
        meters.Start();
    }

    /// <summary>Attaches one when <c>--telemetry full</c> was given; null otherwise.</summary>
    public static TelemetryListener? FromOptions(Options o) => o.Get("telemetry", "none") switch
    {
        "full" => new TelemetryListener(),
        "none" => null,
        var other => throw new ArgumentException($"--telemetry {other}: none or full"),
    };

    public string Summary => $"{Interlocked.Read(ref activityCount)} activities, {Interlocked.Read(ref measurementCount)} measurements";

    public void Dispose()
    {
        meters.Dispose();
        activities.Dispose();
    }
}
