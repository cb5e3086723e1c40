using System.Diagnostics;
using System.Net;

namespace HttpUtil;

/// <summary>
/// The telemetry of one Transport request: its activity, its timings (attached as a <see cref="ClientTrace"/> layer
/// only when the activity records data) and the start of its duration. Made only when something listens
/// (<see cref="Start"/> returns null otherwise), so a request nobody watches pays two flag checks.
/// </summary>
internal sealed class ClientTelemetry
{
    private readonly long start;
    private readonly Activity? activity;
    private readonly RequestTimings? timings;
    private readonly string method;
    private readonly Uri uri;
    private readonly string version;

    private ClientTelemetry(Activity? activity, RequestTimings? timings, string method, Uri uri, string version)
    {
        start = Stopwatch.GetTimestamp();
        this.activity = activity;
        this.timings = timings;
        this.method = method;
        this.uri = uri;
        this.version = version;
    }

    /// <summary>Where a caller that already attached a <see cref="RequestTimings"/> to a request leaves it for the
    /// telemetry to read instead of measuring again.</summary>
    public static readonly HttpRequestOptionsKey<RequestTimings> TimingsKey = new("HttpUtil.RequestTimings");

    /// <summary>True when a listener wants anything a request records.</summary>
    private static bool Wanted => HttpUtilTelemetry.RequestDuration.Enabled || HttpUtilTelemetry.Source.HasListeners();

    /// <summary>Starts the telemetry of <paramref name="request"/> (null when nothing listens), then sends the trace
    /// context of the current activity on it through <paramref name="propagator"/>.</summary>
    public static ClientTelemetry? Start(HttpRequestMessage request, Uri uri, DistributedContextPropagator? propagator)
    {
        ClientTelemetry? telemetry = null;
        if (Wanted)
        {
            var activity = HttpUtilTelemetry.Source.StartActivity(HttpUtilTelemetry.ClientRequestActivity, ActivityKind.Client);
            RequestTimings? timings = null;
            if (activity is not null)
            {
                activity.DisplayName = request.Method.Method;
                if (activity.IsAllDataRequested)
                {
                    activity.SetTag("http.request.method", HttpUtilTelemetry.MethodTag(request.Method.Method));
                    activity.SetTag("server.address", uri.IdnHost);
                    activity.SetTag("server.port", uri.Port);
                    activity.SetTag("url.full", uri.GetComponents(UriComponents.AbsoluteUri & ~UriComponents.UserInfo, UriFormat.UriEscaped));
                    // The proxy's Debug log and Server-Timing measure the same request: one set of timings serves all three.
                    if (!request.Options.TryGetValue(TimingsKey, out timings))
                    {
                        timings = new RequestTimings();
                        request.WithClientTrace(timings.Trace);
                    }
                }
            }
            telemetry = new ClientTelemetry(activity, timings, request.Method.Method, uri, request.Version.Minor == 0 ? "1.0" : "1.1");
        }
        if (propagator is not null && Activity.Current is { } current) Inject(propagator, current, request);
        return telemetry;
    }

    /// <summary>Puts the trace context of <paramref name="activity"/> on <paramref name="request"/>, unless it carries
    /// one of the propagator's fields already.</summary>
    private static void Inject(DistributedContextPropagator propagator, Activity activity, HttpRequestMessage request)
    {
        foreach (var field in propagator.Fields)
        {
            if (request is ForwardedRequestMessage { Fields: { } carried })
            {
                foreach (var f in carried)
                {
                    if (f.Name.Equals(field, StringComparison.OrdinalIgnoreCase)) return;
                }
            }
            else if (request.Headers.NonValidated.Contains(field)) return;
        }
        propagator.Inject(activity, request, static (carrier, name, value) =>
        {
            if (value is null) return;
            var r = (HttpRequestMessage)carrier!;
            if (r is ForwardedRequestMessage { Fields: { } fields }) fields.Add(new Core.HeaderField(name, value));
            else r.Headers.TryAddWithoutValidation(name, value);
        });
    }

    /// <summary>Records which connection the request got.</summary>
    public static void GotConnection(Uri uri, bool reused, bool wasIdle, TimeSpan idleTime)
    {
        if (HttpUtilTelemetry.ConnectionUses.Enabled)
        {
            var tags = new TagList
            {
                { "server.address", uri.IdnHost }, { "server.port", uri.Port }, { "url.scheme", uri.Scheme },
                { "httputil.connection.reused", reused }, { "httputil.connection.was_idle", wasIdle },
            };
            HttpUtilTelemetry.ConnectionUses.Add(1, tags);
        }
        if (wasIdle && HttpUtilTelemetry.IdleTimeBeforeReuse.Enabled)
        {
            var tags = new TagList { { "server.address", uri.IdnHost }, { "server.port", uri.Port }, { "url.scheme", uri.Scheme } };
            HttpUtilTelemetry.IdleTimeBeforeReuse.Record(idleTime.TotalSeconds, tags);
        }
    }

    /// <summary>Records a wait for a connection at MaxConnsPerHost.</summary>
    public static void Queued(HttpRequestMessage request, Uri uri, long since)
    {
        if (!HttpUtilTelemetry.TimeInQueue.Enabled) return;
        var tags = new TagList
        {
            { "http.request.method", HttpUtilTelemetry.MethodTag(request.Method.Method) }, { "server.address", uri.IdnHost },
            { "server.port", uri.Port }, { "url.scheme", uri.Scheme }, { "network.protocol.version", request.Version.Minor == 0 ? "1.0" : "1.1" },
        };
        HttpUtilTelemetry.TimeInQueue.Record(HttpUtilTelemetry.SecondsSince(since), tags);
    }

    /// <summary>Ends the request's telemetry: the response head arrived (<paramref name="response"/>) or it failed
    /// (<paramref name="error"/>).</summary>
    public void Stop(HttpResponseMessage? response, Exception? error)
    {
        var status = response is null ? 0 : (int)response.StatusCode;
        var errorType = error is null ? null : ErrorTypes.Of(error);
        if (HttpUtilTelemetry.RequestDuration.Enabled)
        {
            var tags = new TagList
            {
                { "http.request.method", HttpUtilTelemetry.MethodTag(method) }, { "server.address", uri.IdnHost }, { "server.port", uri.Port },
                { "url.scheme", uri.Scheme }, { "network.protocol.version", version },
            };
            if (status != 0) tags.Add("http.response.status_code", status);
            if (errorType is not null) tags.Add("error.type", errorType);
            HttpUtilTelemetry.RequestDuration.Record(HttpUtilTelemetry.SecondsSince(start), tags);
        }
        if (activity is null) return;
        if (activity.IsAllDataRequested)
        {
            activity.SetTag("network.protocol.version", version);
            if (status != 0) activity.SetTag("http.response.status_code", status);
            if (errorType is not null) activity.SetTag("error.type", errorType);
            if (timings is not null) AddPhases(activity, timings);
        }
        if (error is not null || status >= 400) activity.SetStatus(ActivityStatusCode.Error, error?.Message);
        activity.Stop();
    }

    private static void AddPhases(Activity activity, RequestTimings t)
    {
        Tag(activity, "httputil.dns_lookup.ms", t.DnsLookup);
        Tag(activity, "httputil.tcp_connection.ms", t.TcpConnection);
        Tag(activity, "httputil.tls_handshake.ms", t.TlsHandshake);
        Tag(activity, "httputil.request_sent.ms", t.RequestSent);
        Tag(activity, "httputil.server_processing.ms", t.ServerProcessing);
        activity.SetTag("httputil.connection.reused", t.Reused);
        activity.SetTag("httputil.connection.was_idle", t.WasIdle);
        activity.SetTag("httputil.connection.idle_time.ms", t.IdleTime.TotalMilliseconds);
        if (t.RemoteAddress is { } remote) activity.SetTag("network.peer.address", remote);

        static void Tag(Activity a, string name, TimeSpan? phase)
        {
            if (phase is { } p) a.SetTag(name, p.TotalMilliseconds);
        }
    }

    /// <summary>Records a DNS lookup the dialer made.</summary>
    public static void DnsLookup(string host, long since, Exception? error)
    {
        if (!HttpUtilTelemetry.DnsLookupDuration.Enabled) return;
        var tags = new TagList { { "dns.question.name", host } };
        if (error is not null) tags.Add("error.type", ErrorTypes.Of(error));
        HttpUtilTelemetry.DnsLookupDuration.Record(HttpUtilTelemetry.SecondsSince(since), tags);
    }

    /// <summary>Whether DNS lookups are timed (so the dialer takes a timestamp only then).</summary>
    public static bool TimesDns => HttpUtilTelemetry.DnsLookupDuration.Enabled;
}
