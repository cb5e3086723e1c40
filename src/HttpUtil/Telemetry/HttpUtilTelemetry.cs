using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace HttpUtil;

/// <summary>
/// What HttpUtil publishes through <c>System.Diagnostics</c>: one <see cref="ActivitySource"/> and one
/// <see cref="System.Diagnostics.Metrics.Meter"/>, both named <see cref="Name"/> (<c>"HttpUtil"</c>). Nothing is
/// created or recorded unless a listener is attached (an OpenTelemetry SDK with <c>AddSource("HttpUtil")</c> /
/// <c>AddMeter("HttpUtil")</c>, <c>dotnet-counters monitor --counters HttpUtil</c>, an <see cref="ActivityListener"/>
/// or a <see cref="MeterListener"/>): every instrument is checked with <c>Enabled</c> and the source with
/// <c>HasListeners</c> first.
/// </summary>
/// <remarks>
/// <para><b>Metrics</b> (histograms in seconds, OpenTelemetry's HTTP semantic conventions, so dashboards made for
/// .NET's <c>System.Net.Http</c> meter read ours unchanged):</para>
/// <list type="bullet">
/// <item><c>http.client.request.duration</c> (s): Transport, from sending to the response head, or to the failure.
/// Attributes <c>http.request.method</c>, <c>http.response.status_code</c>, <c>server.address</c>, <c>server.port</c>,
/// <c>url.scheme</c>, <c>network.protocol.version</c> (<c>1.1</c> or <c>1.0</c>) and, on failure,
/// <c>error.type</c> (see below).</item>
/// <item><c>http.client.open_connections</c> ({connection}, up-down): Transport's pooled connections by
/// <c>http.connection.state</c> (<c>active</c> or <c>idle</c>), with <c>server.address</c>, <c>server.port</c>,
/// <c>url.scheme</c>, <c>network.protocol.version</c>, <c>network.peer.address</c>.</item>
/// <item><c>http.client.connection.duration</c> (s): how long each connection stayed open, recorded when it
/// closes; the same attributes without the state.</item>
/// <item><c>http.client.request.time_in_queue</c> (s): how long a request waited for a connection at
/// <see cref="Transport.MaxConnsPerHost"/>; recorded only for requests that waited.</item>
/// <item><c>dns.lookup.duration</c> (s): each lookup the dialer makes (one per host at a time; a request that joins
/// one in flight records nothing), with <c>dns.question.name</c> and, on failure, <c>error.type</c>.</item>
/// <item><c>httputil.client.connection.uses</c> ({request}): what SocketsHttpHandler does not say per request, which
/// connection each request got: <c>httputil.connection.reused</c> (true or false) and
/// <c>httputil.connection.was_idle</c>, with <c>server.address</c>, <c>server.port</c>, <c>url.scheme</c>.</item>
/// <item><c>httputil.client.connection.idle_time</c> (s): how long a reused connection sat idle before this
/// request, same attributes.</item>
/// <item><c>httputil.proxy.request.duration</c> (s): ReverseProxy, from the request's arrival to the end of its
/// response (or tunnel), with <c>http.request.method</c>, <c>http.response.status_code</c> (what the client got; 0
/// when its connection was aborted) and, on failure, <c>error.type</c> (a <see cref="Core.ProxyError"/> name).</item>
/// <item><c>httputil.proxy.failures</c> ({request}): each failed proxied request, with <c>error.type</c> (the
/// <see cref="Core.ProxyError"/> name) and <c>httputil.proxy.error.side</c> (<c>client</c> or <c>upstream</c>).</item>
/// </list>
/// <para><c>error.type</c> on the client side is, as for <c>System.Net.Http</c>: <c>name_resolution_error</c>,
/// <c>connection_error</c>, <c>secure_connection_error</c>, <c>http_protocol_error</c> (a malformed answer),
/// <c>response_ended</c> (the connection closed before the response), <c>timeout</c>, or the exception's full
/// type name.</para>
/// <para><b>Traces</b>: Transport starts an activity <c>HttpUtil.Client.Request</c> (kind
/// <see cref="ActivityKind.Client"/>, display name the method) per request, stopped when the response head
/// arrives, with the attributes above plus <c>url.full</c>, <c>network.peer.address</c> and the
/// <see cref="ClientTrace"/> phases as tags: <c>httputil.dns_lookup.ms</c>, <c>httputil.tcp_connection.ms</c>,
/// <c>httputil.tls_handshake.ms</c> (each only when it happened), <c>httputil.request_sent.ms</c>,
/// <c>httputil.server_processing.ms</c> (to the first response byte), <c>httputil.connection.reused</c>,
/// <c>httputil.connection.was_idle</c>, <c>httputil.connection.idle_time.ms</c>. The W3C trace context of the
/// current activity goes out on the request (<c>traceparent</c>, <c>tracestate</c>) through
/// <see cref="Transport.ActivityHeadersPropagator"/>, unless the request already carries those fields or the
/// propagator is null. ReverseProxy starts <c>HttpUtil.ReverseProxy.Request</c> (kind
/// <see cref="ActivityKind.Server"/>) per proxied request: a child of the host's activity when there is one,
/// else of the trace context the client sent; the upstream request's activity is its child, and the client's own
/// <c>traceparent</c> is replaced by it on the way up (passed through unchanged when no activity runs).</para>
/// </remarks>
public static class HttpUtilTelemetry
{
    /// <summary>The name of the activity source and of the meter: <c>"HttpUtil"</c>.</summary>
    public const string Name = "HttpUtil";

    /// <summary>The activity name of a Transport request.</summary>
    public const string ClientRequestActivity = "HttpUtil.Client.Request";

    /// <summary>The activity name of a request through ReverseProxy.</summary>
    public const string ProxyRequestActivity = "HttpUtil.ReverseProxy.Request";

    private static readonly string? Version = typeof(HttpUtilTelemetry).Assembly.GetName().Version?.ToString();

    internal static readonly ActivitySource Source = new(Name, Version);
    internal static readonly Meter Meter = new(Name, Version);

    // The bucket boundaries .NET's own HTTP histograms advertise, so that the two line up on one dashboard.
    private static readonly InstrumentAdvice<double> Seconds = new()
    {
        HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
    };

    internal static readonly Histogram<double> RequestDuration = Meter.CreateHistogram("http.client.request.duration", "s",
        "Duration of HTTP client requests (to the response head).", advice: Seconds);

    internal static readonly UpDownCounter<long> OpenConnections = Meter.CreateUpDownCounter<long>("http.client.open_connections", "{connection}",
        "Number of outbound HTTP connections that are currently active or idle on the client.");

    internal static readonly Histogram<double> ConnectionDuration = Meter.CreateHistogram("http.client.connection.duration", "s",
        "The duration of successfully established outbound HTTP connections.", advice: new InstrumentAdvice<double>
        {
            HistogramBucketBoundaries = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
        });

    internal static readonly Histogram<double> TimeInQueue = Meter.CreateHistogram("http.client.request.time_in_queue", "s",
        "The amount of time requests spent on a queue waiting for an available connection.", advice: Seconds);

    internal static readonly Histogram<double> DnsLookupDuration = Meter.CreateHistogram("dns.lookup.duration", "s",
        "Measures the time taken to perform a DNS lookup.", advice: Seconds);

    internal static readonly Counter<long> ConnectionUses = Meter.CreateCounter<long>("httputil.client.connection.uses", "{request}",
        "Requests by the connection they got: new or reused, and whether it came from the idle pool.");

    internal static readonly Histogram<double> IdleTimeBeforeReuse = Meter.CreateHistogram("httputil.client.connection.idle_time", "s",
        "How long a reused connection sat idle before the request that took it.", advice: Seconds);

    internal static readonly Histogram<double> ProxyRequestDuration = Meter.CreateHistogram("httputil.proxy.request.duration", "s",
        "Duration of requests through ReverseProxy, from arrival to the end of the response.", advice: Seconds);

    internal static readonly Counter<long> ProxyFailures = Meter.CreateCounter<long>("httputil.proxy.failures", "{request}",
        "Requests through ReverseProxy that failed, by error and side.");

    /// <summary>The method as the conventions want it: a known method as is, anything else <c>_OTHER</c>.</summary>
    internal static string MethodTag(string method) => method switch
    {
        "GET" or "POST" or "PUT" or "DELETE" or "HEAD" or "OPTIONS" or "PATCH" or "TRACE" or "CONNECT" => method,
        _ => "_OTHER",
    };

    /// <summary>Seconds since a <see cref="Stopwatch"/> timestamp.</summary>
    internal static double SecondsSince(long start) => Stopwatch.GetElapsedTime(start).TotalSeconds;
}
