using System.Diagnostics;
using Microsoft.AspNetCore.Http;

namespace HttpUtil;

/// <summary>
/// The telemetry of one request through <see cref="ReverseProxy"/>: its server activity, its duration, its failure.
/// Made only when something listens (<see cref="Start"/> returns null otherwise); while it runs it is a feature of the
/// request's context, where the failure path finds it.
/// </summary>
internal sealed class ProxyTelemetry
{
    private readonly long start = Stopwatch.GetTimestamp();
    private readonly Activity? activity;
    private readonly string method;
    private ReverseProxyException? error;

    private ProxyTelemetry(Activity? activity, string method)
    {
        this.activity = activity;
        this.method = method;
    }

    /// <summary>The upstream the request went to, once known.</summary>
    public Uri? Upstream { get; set; }

    /// <summary>Starts the telemetry of <paramref name="context"/>'s request; null when nothing listens.</summary>
    public static ProxyTelemetry? Start(HttpContext context)
    {
        var traces = HttpUtilTelemetry.Source.HasListeners();
        if (!traces && !HttpUtilTelemetry.ProxyRequestDuration.Enabled && !HttpUtilTelemetry.ProxyFailures.Enabled) return null;
        var request = context.Request;
        Activity? activity = null;
        if (traces)
        {
            // A child of the host's activity when it made one, else of the trace context the client sent.
            activity = Activity.Current is not null
                ? HttpUtilTelemetry.Source.StartActivity(HttpUtilTelemetry.ProxyRequestActivity, ActivityKind.Server)
                : HttpUtilTelemetry.Source.StartActivity(HttpUtilTelemetry.ProxyRequestActivity, ActivityKind.Server, ClientContext(request));
            if (activity is not null)
            {
                activity.DisplayName = request.Method;
                if (activity.IsAllDataRequested)
                {
                    activity.SetTag("http.request.method", HttpUtilTelemetry.MethodTag(request.Method));
                    activity.SetTag("url.path", request.Path.Value);
                    activity.SetTag("url.scheme", request.Scheme);
                    activity.SetTag("network.protocol.name", "http");
                    activity.SetTag("network.protocol.version", request.Protocol.StartsWith("HTTP/", StringComparison.Ordinal) ? request.Protocol[5..] : request.Protocol);
                    if (context.Connection.RemoteIpAddress is { } client) activity.SetTag("client.address", client.ToString());
                }
            }
        }
        var telemetry = new ProxyTelemetry(activity, request.Method);
        context.Features.Set(telemetry);
        return telemetry;
    }

    private static ActivityContext ClientContext(HttpRequest request)
    {
        DistributedContextPropagator.Current.ExtractTraceIdAndState(request.Headers, static (carrier, name, out value, out values) =>
        {
            values = null;
            value = ((IHeaderDictionary)carrier!).TryGetValue(name, out var v) ? v.ToString() : null;
        }, out var parent, out var state);
        return ActivityContext.TryParse(parent, state, isRemote: true, out var context) ? context : default;
    }

    /// <summary>Notes the failure of <paramref name="context"/>'s request, when its telemetry runs.</summary>
    public static void Failed(HttpContext context, ReverseProxyException failure)
    {
        if (context.Features.Get<ProxyTelemetry>() is { } t) t.error = failure;
    }

    /// <summary>Ends the telemetry once the response (or the tunnel) is done.</summary>
    public void Stop(HttpContext context)
    {
        context.Features.Set<ProxyTelemetry>(null);
        // What the client got: 0 when its connection was aborted.
        var status = context.RequestAborted.IsCancellationRequested ? 0 : context.Response.StatusCode;
        var errorType = error?.Error.ToString();
        if (HttpUtilTelemetry.ProxyRequestDuration.Enabled)
        {
            var tags = new TagList { { "http.request.method", HttpUtilTelemetry.MethodTag(method) }, { "http.response.status_code", status } };
            if (errorType is not null) tags.Add("error.type", errorType);
            HttpUtilTelemetry.ProxyRequestDuration.Record(HttpUtilTelemetry.SecondsSince(start), tags);
        }
        if (error is not null && HttpUtilTelemetry.ProxyFailures.Enabled)
        {
            var tags = new TagList { { "error.type", errorType }, { "httputil.proxy.error.side", error.IsClientSide ? "client" : "upstream" } };
            HttpUtilTelemetry.ProxyFailures.Add(1, tags);
        }
        if (activity is null) return;
        if (activity.IsAllDataRequested)
        {
            activity.SetTag("http.response.status_code", status);
            if (Upstream is { } up)
            {
                activity.SetTag("server.address", up.IdnHost);
                activity.SetTag("server.port", up.Port);
            }
            if (errorType is not null) activity.SetTag("error.type", errorType);
        }
        if (error is not null || status >= 500 || status == 0) activity.SetStatus(ActivityStatusCode.Error, error?.Message);
        activity.Stop();
    }
}
