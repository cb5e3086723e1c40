using System.Diagnostics;
using System.Buffers;
using HttpUtil.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HttpUtil;

/// <summary>
/// An HTTP reverse proxy for ASP.NET Core (Go's <c>httputil.ReverseProxy</c>): it takes an incoming request, sends it
/// on to an upstream server over HTTP/1.1 and streams the response back. Use <see cref="ServeHttpAsync"/> as a
/// <see cref="RequestDelegate"/>, or <c>app.MapReverseProxy(pattern, proxy)</c>.
/// </summary>
/// <remarks>
/// <para>For each request, in order: the hop-by-hop fields (and every field a <c>Connection</c> field names) are
/// dropped; with <see cref="Rewrite"/>, so are client-sent <c>Forwarded</c> and <c>X-Forwarded-*</c> fields, and the
/// hook runs on a <see cref="ProxyRequest"/>; otherwise <see cref="Director"/> runs (or the target of
/// <see cref="NewSingleHost"/> applies), hop-by-hop fields it added are dropped again, and the client's address is
/// appended to <c>X-Forwarded-For</c> unless <see cref="OmitXForwardedFor"/>. Then the <see cref="Proxy"/> hook may
/// answer the client itself. The request goes out through <see cref="Transport"/>; the response's hop-by-hop
/// fields are dropped, <see cref="ModifyResponse"/> runs, and the head and body are copied to the client, flushed
/// as <see cref="FlushInterval"/> says. Every decision about fields, URLs, flushing and upgrades is made by the core
/// (<c>HttpUtil.Core.Forwarding</c>).</para>
/// <para>Failures before the response starts go to <see cref="ErrorHandler"/> (default: log, then 502, or 504 when
/// the upstream timed out; a client that went away is logged at Debug level only). A failure after the response
/// started (the upstream body broke, or the client went away) aborts the client's connection, so a truncated body
/// is never taken for a complete one. A client that aborts cancels the upstream request, which closes its
/// connection.</para>
/// <para>A <c>101 Switching Protocols</c> whose protocol matches the request's turns the exchange into a tunnel that
/// copies both ways until both sides have ended (when the client's side ends, the upstream's sending side is shut
/// down and its remaining bytes still reach the client). A mismatched protocol is a 502.</para>
/// <para>Interim responses: ASP.NET Core cannot send 1xx responses other than <c>100 Continue</c> (which Kestrel
/// sends itself when the proxy starts reading the client's body, so <c>Expect: 100-continue</c> works end to end).
/// Others, such as <c>103 Early Hints</c>, are not forwarded; with <see cref="Debug"/> they are logged.</para>
/// </remarks>
public sealed class ReverseProxy
{
    private const int CopyBufferSize = 32 * 1024;

    /// <summary>With the default pool only the first read (which leaves with the head) goes through a pooled buffer;
    /// a small one, so that many concurrent responses do not drain the shared pool's 32 KiB arrays, which the front
    /// server's output buffers take for the reads after it.</summary>
    private const int FirstReadSize = 4 * 1024;

    /// <summary>How much of the front server's output buffer a read straight into it asks for. Measured: 4 KiB (the
    /// front's pool block) halves what is allocated at 64 KiB but reads through our buffers in 16 pieces and costs
    /// more CPU than 32 KiB, which lets large reads go from socket to socket (the front's pipe rents these larger
    /// buffers from the shared array pool).</summary>
    private const int DirectReadSize = 32 * 1024;
    private static readonly Lazy<Transport> SharedTransport = new(() => new Transport
    {
        MaxIdleConnsPerHost = 256,
        ResponseBodyIdleTimeout = TimeSpan.FromSeconds(100),
    });

    private readonly UpstreamTarget? singleHostTarget;
    private readonly DeadlinePool deadlines = new(1024);
    private readonly Action<HttpRequestMessage>? singleHostDirector;
    private HttpMessageInvoker? invoker;
    private ILogger? hostLogger;
    private int querySanitizedLogged;

    /// <summary>A proxy with no target: set <see cref="Rewrite"/>, <see cref="Director"/> or <see cref="Proxy"/>.</summary>
    public ReverseProxy()
    {
    }

    private ReverseProxy(Uri target)
    {
        singleHostTarget = UpstreamTarget.Of(target);
        singleHostDirector = request => request.RequestUri = SingleHostUri(target, request.RequestUri);
        Director = singleHostDirector;
    }

    /// <summary>
    /// A proxy to one upstream (Go's <c>NewSingleHostReverseProxy</c>): each request goes to
    /// <paramref name="target"/>'s scheme, host and port, with the target's path and the request's joined by exactly
    /// one slash (raw, escaped forms) and the queries joined with <c>&amp;</c>. The outgoing <c>Host</c> stays as the
    /// client sent it. Its <see cref="Director"/> does the rewriting; wrap it to add to it.
    /// </summary>
    /// <param name="target">An absolute http or https URI.</param>
    /// <returns>The proxy.</returns>
    /// <exception cref="ArgumentException"><paramref name="target"/> is not an absolute http or https URI.</exception>
    public static ReverseProxy NewSingleHost(Uri target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (!target.IsAbsoluteUri || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"the upstream must be an absolute http or https URI, not {target}", nameof(target));
        return new ReverseProxy(target);
    }

    /// <summary>What a <see cref="Proxy"/> hook returns when it answered the client itself (Go's <c>ErrHandled</c>).</summary>
    public static ProxyOutcome ErrHandled => ProxyOutcome.Handled;

    /// <summary>The transport used when <see cref="Transport"/> is null: one <see cref="HttpUtil.Transport"/> shared by
    /// every proxy in the process, keeping up to 256 idle connections per upstream, whose response bodies may pause
    /// for at most 100 s (<see cref="HttpUtil.Transport.ResponseBodyIdleTimeout"/>, as YARP's activity timeout):
    /// an upstream that stops part way through a body then has the client's connection aborted.</summary>
    public static Transport DefaultTransport => SharedTransport.Value;

    /// <summary>
    /// Runs last, with the incoming request and the outgoing one as the other hooks left it: return
    /// <see cref="ProxyOutcome.Forward"/> to send it (changed or not), or answer the client through the
    /// <see cref="HttpContext"/> and return <see cref="ProxyOutcome.Handled"/> (<see cref="ErrHandled"/>): nothing is
    /// sent upstream. An exception goes to <see cref="ErrorHandler"/>.
    /// </summary>
    public Func<HttpContext, HttpRequestMessage, ValueTask<ProxyOutcome>>? Proxy { get; set; }

    /// <summary>
    /// Changes the outgoing request (Go's <c>Rewrite</c>): it runs after hop-by-hop fields and client-sent
    /// <c>Forwarded</c> and <c>X-Forwarded-*</c> were dropped, and what it sets is sent as it is. Call
    /// <see cref="ProxyRequest.SetUrl"/> to choose the upstream and <see cref="ProxyRequest.SetXForwarded"/> to add the
    /// forwarding fields. Cannot be combined with <see cref="Director"/>.
    /// </summary>
    public Action<ProxyRequest>? Rewrite { get; set; }

    /// <summary>
    /// Changes the outgoing request (Go's <c>Director</c>, kept for Go users; prefer <see cref="Rewrite"/>). Unsafe
    /// in two ways, as in Go: fields it adds are dropped when the client's <c>Connection</c> field names them, and
    /// client-sent <c>X-Forwarded-*</c> fields reach the upstream. The outgoing request's URI starts as the incoming
    /// one (absolute). Cannot be combined with <see cref="Rewrite"/>.
    /// </summary>
    public Action<HttpRequestMessage>? Director { get; set; }

    /// <summary>The handler that sends requests upstream; null: <see cref="DefaultTransport"/>. Read on the first
    /// request.</summary>
    public HttpMessageHandler? Transport { get; set; }

    /// <summary>
    /// How often the response body is flushed to the client while it is copied (reads take up to 32 KiB): zero, when
    /// the copy buffer is full, at the end, and whenever the upstream pauses, so no byte (and not the head) waits on a
    /// stalled upstream (with the default pool every read is sent as it arrives); negative, after every write;
    /// positive, like zero except that after a pause bytes wait up to this long for more to join them. Responses of
    /// type <c>text/event-stream</c> and of unknown length are flushed after every write whatever this says.
    /// </summary>
    public TimeSpan FlushInterval { get; set; }

    /// <summary>Where errors (and, with <see cref="Debug"/>, each exchange) are logged; null: the host's logger for
    /// <c>HttpUtil.ReverseProxy</c> when the request's services have an <see cref="ILoggerFactory"/>, else standard
    /// error.</summary>
    public ILogger? ErrorLog { get; set; }

    /// <summary>Where the buffers that bodies are copied through come from (Go's <c>BufferPool</c>); null:
    /// <see cref="SharedBufferPool"/> (<see cref="System.Buffers.ArrayPool{T}.Shared"/>), and response bytes after the
    /// first read are read straight into the front server's own pooled output buffers, with no copy in between.</summary>
    public IBufferPool? BufferPool { get; set; }

    /// <summary>Changes the upstream's response before it is copied (Go's <c>ModifyResponse</c>); its hop-by-hop fields
    /// are already gone. An exception goes to <see cref="ErrorHandler"/> as <see cref="ProxyError.ModifyResponse"/>.
    /// Not called for a <c>101</c>.</summary>
    public Func<HttpResponseMessage, ValueTask>? ModifyResponse { get; set; }

    /// <summary>Answers a request that could not be forwarded, before its response started; null: log it (at Debug
    /// level when the client caused it), then answer <see cref="ReverseProxyException.Status"/> with an empty body.
    /// Not called once the response has started: the client's connection is aborted instead.</summary>
    public Func<HttpContext, ReverseProxyException, Task>? ErrorHandler { get; set; }

    /// <summary>Logs each exchange at Debug level: method, target, upstream, status, body bytes, whether the upstream
    /// connection was reused, the upstream phases (DNS, connect, TLS, wait, total) and interim responses.</summary>
    public bool Debug { get; set; }

    /// <summary>Adds a <c>Server-Timing</c> response field with the upstream phases (<c>dns</c>, <c>connect</c>,
    /// <c>tls</c>, <c>wait</c>, <c>total</c>, in milliseconds; phases that did not happen are left out), which browser
    /// developer tools show. The phases other than <c>total</c> are measured with <see cref="HttpUtil.Transport"/> only.</summary>
    public bool ServerTiming { get; set; }

    /// <summary>How long to wait for the upstream's response head (from the start of sending); past it the client gets
    /// 504 (<see cref="ProxyError.UpstreamTimeout"/>). Default 100 seconds; <see cref="Timeout.InfiniteTimeSpan"/>
    /// for none.</summary>
    public TimeSpan UpstreamTimeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>The largest request body the proxy forwards, in bytes; null: the host's own limit (Kestrel's 30 MB by
    /// default). A Content-Length above it is answered 413 before anything is sent upstream; a body that grows past it
    /// fails with 413 too (<see cref="ProxyError.RequestBodyTooLarge"/>), and the upstream request is cancelled.</summary>
    public long? MaxRequestBodySize { get; set; }

    /// <summary>With <see cref="Director"/> (or <see cref="NewSingleHost"/>), do not append the client's address to
    /// <c>X-Forwarded-For</c> (Go's nil <c>X-Forwarded-For</c> entry).</summary>
    public bool OmitXForwardedFor { get; set; }

    /// <summary>The clock for periodic flushing (tests inject one).</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>
    /// Forwards the request of <paramref name="context"/> and copies the response back. Never throws for a failed
    /// exchange: failures go to <see cref="ErrorHandler"/> or abort the client's connection (see the remarks).
    /// </summary>
    /// <param name="context">The incoming request's context; its <c>RequestAborted</c> cancels the exchange.</param>
    /// <returns>A task that completes when the response has been sent (or the tunnel closed).</returns>
    public Task ServeHttpAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var telemetry = ProxyTelemetry.Start(context);
        return telemetry is null ? ForwardAsync(context, null) : ForwardObservedAsync(context, telemetry);
    }

    private async Task ForwardObservedAsync(HttpContext context, ProxyTelemetry telemetry)
    {
        try
        {
            await ForwardAsync(context, telemetry).ConfigureAwait(false);
        }
        finally
        {
            telemetry.Stop(context);
        }
    }

    private async Task ForwardAsync(HttpContext context, ProxyTelemetry? telemetry)
    {
        if (Rewrite is not null && Director is not null)
            throw new InvalidOperationException("a ReverseProxy must not have both Director and Rewrite");
        var aborted = context.RequestAborted;
        var request = context.Request;
        var headers = request.Headers;
        var plan = Forwarding.planRequest(Joined(headers.Connection), Joined(headers.Upgrade), Joined(headers.TE), Rewrite is not null);
        if (Forwarding.checkRequestUpgrade(plan) is { } badUpgrade)
        {
            await FailAsync(context, new ReverseProxyException(ProxyError.InvalidRequest, badUpgrade)).ConfigureAwait(false);
            return;
        }

        if (MaxRequestBodySize is { } maxBody)
        {
            if (ProxyErrors.refusesBody(maxBody, request.ContentLength ?? -1))
            {
                await FailAsync(context, new ReverseProxyException(ProxyError.RequestBodyTooLarge,
                    $"the request body ({request.ContentLength} bytes) is larger than MaxRequestBodySize ({maxBody})")).ConfigureAwait(false);
                return;
            }
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = maxBody;
        }
        var pool = BufferPool ?? SharedBufferPool.Instance;
        var bodyFeature = context.Features.Get<IHttpRequestBodyDetectionFeature>();
        var content = bodyFeature?.CanHaveBody ?? request.ContentLength > 0
            ? new RequestBodyContent(request, pool, CopyBufferSize)
            : null;
        using var outgoing = new ForwardedRequestMessage(HttpMethod.Parse(request.Method))
        {
            Content = content,
            SkipsResponseFields = ModifyResponse is null,
        };
        // Without hooks that read or change the outgoing headers, our Transport writes the core's fields directly.
        var direct = Rewrite is null && Proxy is null && singleHostTarget is not null && ReferenceEquals(Director, singleHostDirector)
            && (Transport ?? DefaultTransport) is HttpUtil.Transport;
        // With an activity running, the handler sends its trace context upstream: the client's own is dropped here.
        var traceFields = Activity.Current is not null ? TraceContextFields() : null;
        if (direct) ForwardFields(context, headers, plan, outgoing, traceFields);
        else CopyRequestFields(headers, plan, outgoing, traceFields);
        if (content is not null && request.ContentLength is null && request.SupportsTrailers())
            outgoing.WithTrailers(() => Trailers(context));

        RequestTimings? timer = Debug || ServerTiming ? new RequestTimings() : null;
        if (timer is not null)
        {
            outgoing.WithClientTrace(timer.Trace);
            outgoing.Options.Set(ClientTelemetry.TimingsKey, timer);
        }

        try
        {
            if (direct) outgoing.RequestUri = ProxyUrls.Upstream(singleHostTarget!, context, this);
            else if (!RunRequestHooks(context, outgoing, plan))
            {
                await FailAsync(context, new ReverseProxyException(ProxyError.Hook,
                    "the proxy has no upstream: set Rewrite, Director or Proxy, or use NewSingleHost")).ConfigureAwait(false);
                return;
            }
            if (Proxy is { } hook && await hook(context, outgoing).ConfigureAwait(false) == ProxyOutcome.Handled) return;
        }
        catch (Exception ex)
        {
            await FailAsync(context, new ReverseProxyException(ProxyError.Hook, "a proxy hook threw", ex)).ConfigureAwait(false);
            return;
        }

        if (telemetry is not null) telemetry.Upstream = outgoing.RequestUri;
        HttpResponseMessage response;
        // The upstream deadline, cancelled by the client's abort too; its source is reused across requests.
        var deadline = deadlines.Start(aborted, UpstreamTimeout);
        try
        {
            // Our Transport is called on its pooled path (no Task per request); any other handler through an invoker.
            response = (Transport ?? DefaultTransport) is HttpUtil.Transport ours
                ? await ours.SendCoreAsync(outgoing, deadline.Token).ConfigureAwait(false)
                : await Invoker.SendAsync(outgoing, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await FailAsync(context, SendFailure(ex, content, aborted, deadline.Token)).ConfigureAwait(false);
            return;
        }
        finally
        {
            // Reused only with our Transport, which lets go of the token once the head arrived.
            deadlines.Finish(deadline, reusable: (Transport ?? DefaultTransport) is HttpUtil.Transport);
        }
        timer?.HeadArrived();

        using (response)
        {
            var status = (int)response.StatusCode;
            if (Forwarding.switchesProtocols(status))
            {
                await SwitchAsync(context, plan, response).ConfigureAwait(false);
                return;
            }
            if (ModifyResponse is { } modify)
            {
                try
                {
                    await modify(response).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    await FailAsync(context, new ReverseProxyException(ProxyError.ModifyResponse, "ModifyResponse threw", ex)).ConfigureAwait(false);
                    return;
                }
            }
            var contentLength = CopyResponseHead(context, response, usesWireHead: ModifyResponse is null);
            if (timer is not null && ServerTiming) context.Response.Headers.Append("Server-Timing", ServerTimingOf(timer));
            var bytes = await CopyResponseBodyAsync(context, response, contentLength, pool).ConfigureAwait(false);
            if (bytes >= 0 && response.TrailingHeaders.NonValidated.Count > 0 && context.Response.SupportsTrailers())
            {
                foreach (var (name, values) in response.TrailingHeaders.NonValidated)
                    context.Response.AppendTrailer(name, values.Count == 1 ? values.ToString() : values.ToArray());
            }
            if (timer is not null && Debug) LogExchange(context, outgoing, status, bytes, timer);
        }
    }

    private HttpMessageInvoker Invoker =>
        invoker ??= new HttpMessageInvoker(Transport ?? DefaultTransport, disposeHandler: false);

    private static string? Joined(Microsoft.Extensions.Primitives.StringValues values) =>
        values.Count switch
        {
            0 => null,
            1 => values[0],
            _ => string.Join(", ", values.ToArray()),
        };

    /// <summary>The fast path's fields: what the core forwards, in the core's own form, then the ones it adds and
    /// <c>X-Forwarded-For</c> (as the single host's director adds it).</summary>
    private void ForwardFields(HttpContext context, IHeaderDictionary incoming, HopPlan plan, ForwardedRequestMessage outgoing,
        IReadOnlyCollection<string>? traceFields)
    {
        var fields = new List<HeaderField>(incoming.Count + 2);
        string? priorForwardedFor = null;
        foreach (var (name, values) in incoming)
        {
            if (Forwarding.requestFieldFate(plan, name) != FieldFate.Forward || IsTraceField(traceFields, name)) continue;
            var value = values.Count == 1 ? values.ToString() : Forwarding.joinValues(name, values.ToArray()!);
            switch (Forwarding.fieldRole(name))
            {
                case FieldRole.Host:
                    outgoing.Host = value;
                    break;
                case FieldRole.ForwardedFor:
                    priorForwardedFor = value;
                    break;
                default:
                    fields.Add(new HeaderField(name, value));
                    break;
            }
        }
        foreach (var f in Forwarding.requestAdditions(plan)) fields.Add(f);
        if (!OmitXForwardedFor && ProxyUrls.ClientAddress(context) is { } client)
            fields.Add(new HeaderField("X-Forwarded-For", Forwarding.appendForwardedFor(priorForwardedFor, client)));
        else if (priorForwardedFor is not null)
            fields.Add(new HeaderField("X-Forwarded-For", priorForwardedFor));
        outgoing.Fields = fields;
    }

    /// <summary>The incoming fields the core forwards, then the ones it adds (<c>Te</c>, <c>Upgrade</c>).</summary>
    private static void CopyRequestFields(IHeaderDictionary incoming, HopPlan plan, HttpRequestMessage outgoing,
        IReadOnlyCollection<string>? traceFields)
    {
        var headers = outgoing.Headers;
        foreach (var (name, values) in incoming)
        {
            if (Forwarding.requestFieldFate(plan, name) != FieldFate.Forward || IsTraceField(traceFields, name)) continue;
            var added = values.Count == 1
                ? headers.TryAddWithoutValidation(name, values.ToString())
                : headers.TryAddWithoutValidation(name, values.ToArray());
            // Content fields (Content-Type...) live on the content; without a body they have nothing to describe.
            if (!added && outgoing.Content is { } content) content.Headers.TryAddWithoutValidation(name, values.ToArray());
        }
        foreach (var f in Forwarding.requestAdditions(plan)) headers.TryAddWithoutValidation(f.Name, f.Value);
    }

    /// <summary>The fields the upstream handler's propagator writes (none when it writes nothing).</summary>
    private IReadOnlyCollection<string>? TraceContextFields() =>
        ((Transport ?? DefaultTransport) is HttpUtil.Transport ours ? ours.ActivityHeadersPropagator : DistributedContextPropagator.Current)?.Fields;

    private static bool IsTraceField(IReadOnlyCollection<string>? traceFields, string name)
    {
        if (traceFields is null) return false;
        foreach (var f in traceFields)
        {
            if (f.Equals(name, StringComparison.OrdinalIgnoreCase)) return true;
        }
        return false;
    }

    /// <summary>Director (or the single host's URL), or Rewrite: false when none is set and no Proxy hook either.</summary>
    private bool RunRequestHooks(HttpContext context, HttpRequestMessage outgoing, HopPlan plan)
    {
        var director = Director;
        if (Rewrite is { } rewrite)
        {
            outgoing.RequestUri = IncomingUri(context);
            rewrite(new ProxyRequest(context, outgoing, this));
            return true;
        }
        if (director is null)
        {
            outgoing.RequestUri = IncomingUri(context);
            return Proxy is not null;
        }
        if (singleHostTarget is not null && ReferenceEquals(director, singleHostDirector))
        {
            // The single host's own director, run straight from the raw target: it adds no fields.
            outgoing.RequestUri = ProxyUrls.Upstream(singleHostTarget, context, this);
        }
        else
        {
            outgoing.RequestUri = IncomingUri(context);
            director(outgoing);
            StripHopByHop(outgoing.Headers, plan);
        }
        if (!OmitXForwardedFor && ProxyUrls.ClientAddress(context) is { } client)
        {
            var headers = outgoing.Headers;
            var prior = headers.NonValidated.TryGetValues("X-Forwarded-For", out var v) ? Joined(v.ToArray()) : null;
            if (prior is not null) headers.Remove("X-Forwarded-For");
            headers.TryAddWithoutValidation("X-Forwarded-For", Forwarding.appendForwardedFor(prior, client));
        }
        return true;
    }

    /// <summary>After a Director: drops again what the core does not forward (it may have added such fields), keeping
    /// the additions.</summary>
    private static void StripHopByHop(System.Net.Http.Headers.HttpRequestHeaders headers, HopPlan plan)
    {
        List<string>? drop = null;
        foreach (var (name, _) in headers.NonValidated)
        {
            if (Forwarding.requestFieldFate(plan, name) == FieldFate.Drop) (drop ??= []).Add(name);
        }
        if (drop is null) return;
        foreach (var name in drop) headers.Remove(name);
        foreach (var f in Forwarding.requestAdditions(plan)) headers.TryAddWithoutValidation(f.Name, f.Value);
    }

    /// <summary>The incoming request's URI, absolute (what Director and Rewrite start from).</summary>
    private static Uri IncomingUri(HttpContext context)
    {
        var r = context.Request;
        return new Uri(string.Concat(r.Scheme, "://", r.Host.HasValue ? r.Host.Value : "localhost", ProxyUrls.RawTarget(context)));
    }

    private static Uri SingleHostUri(Uri target, Uri? incoming)
    {
        var raw = incoming is null ? "/" : incoming.IsAbsoluteUri ? incoming.PathAndQuery : incoming.OriginalString;
        var (path, query) = Forwarding.splitTarget(raw);
        var targetQuery = target.Query.Length > 0 ? target.Query[1..] : "";
        var joinedQuery = Forwarding.joinQuery(targetQuery, query);
        var text = target.GetLeftPart(UriPartial.Authority) + Forwarding.joinPath(target.AbsolutePath, path);
        return new Uri(joinedQuery.Length == 0 ? text : text + "?" + joinedQuery);
    }

    private static Headers Trailers(HttpContext context)
    {
        var trailers = context.Features.Get<IHttpRequestTrailersFeature>();
        if (trailers is null || !trailers.Available) return Headers.Empty;
        var fields = new List<HeaderField>();
        foreach (var (name, values) in trailers.Trailers)
        {
            foreach (var v in values) fields.Add(new HeaderField(name, v ?? ""));
        }
        return Headers.OfSeq(fields);
    }

    /// <summary>Which stage a failed send failed at.</summary>
    private static ReverseProxyException SendFailure(Exception ex, RequestBodyContent? content, CancellationToken aborted, CancellationToken deadline)
    {
        if (aborted.IsCancellationRequested)
            return new ReverseProxyException(ProxyError.ClientCanceled, "the client went away before the response", ex);
        if (content?.ClientFailure is { } client)
            return new ReverseProxyException(ProxyErrors.ofClientBody((client as BadHttpRequestException)?.StatusCode ?? 0),
                "reading the client's request body failed", client);
        if (ex is OperationCanceledException && deadline.IsCancellationRequested)
            return new ReverseProxyException(ProxyError.UpstreamTimeout, "the upstream did not answer in time", ex);
        if (content?.UpstreamFailure is { } upstream)
            return new ReverseProxyException(ProxyError.RequestBodyUpstream, "sending the request body upstream failed", upstream);
        return new ReverseProxyException(ProxyError.Upstream, "the upstream request failed", ex);
    }

    /// <summary>Status and the fields the core forwards; returns the body's length (-1 when unknown).</summary>
    private static long CopyResponseHead(HttpContext context, HttpResponseMessage response, bool usesWireHead)
    {
        var res = context.Response;
        res.StatusCode = (int)response.StatusCode;
        var headers = res.Headers;
        string? trailer = null;
        if (usesWireHead && response.GetWireHead() is { } head)
        {
            var fields = head.Headers;
            fields.TryGetValue("Connection", out var connection);
            fields.TryGetValue("Upgrade", out var upgrade);
            var plan = Forwarding.planResponse(connection, upgrade);
            foreach (var f in fields.AsSpan())
            {
                if (Forwarding.responseFieldFate(plan, false, f.Name) == FieldFate.Forward) headers.Append(f.Name, f.Value);
            }
            if (fields.TryGetValue("Trailer", out var t)) trailer = t;
        }
        else
        {
            var rh = response.Headers.NonValidated;
            var plan = Forwarding.planResponse(rh.TryGetValues("Connection", out var c) ? Joined(c.ToArray()) : null,
                rh.TryGetValues("Upgrade", out var u) ? Joined(u.ToArray()) : null);
            foreach (var (name, values) in rh)
            {
                if (Forwarding.responseFieldFate(plan, false, name) == FieldFate.Forward) headers.Append(name, values.ToArray());
            }
            foreach (var (name, values) in response.Content.Headers.NonValidated)
            {
                if (Forwarding.responseFieldFate(plan, false, name) == FieldFate.Forward) headers.Append(name, values.ToArray());
            }
            if (rh.TryGetValues("Trailer", out var tv)) trailer = Joined(tv.ToArray());
        }
        if (trailer is not null && res.SupportsTrailers())
        {
            foreach (var name in Forwarding.announcedTrailers(trailer)) res.DeclareTrailer(name);
        }
        return res.ContentLength ?? -1;
    }

    /// <summary>
    /// Copies the body as the core's flush rule says; returns the bytes copied, or -1 after a failure (which aborted the
    /// client's connection). The first read goes through a pooled buffer and out with the response head in one write.
    /// With the default pool, later reads land straight in the front server's output buffers (no copy) and are flushed
    /// as they arrive; with a <see cref="BufferPool"/> of the user's, or a positive <see cref="FlushInterval"/>, every
    /// read goes through a pooled buffer.
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<long> CopyResponseBodyAsync(HttpContext context, HttpResponseMessage response, long contentLength, IBufferPool pool)
    {
        var aborted = context.RequestAborted;
        var mode = Forwarding.flushMode(FlushInterval, context.Response.ContentType, contentLength);
        var direct = BufferPool is null && mode != FlushMode.Periodic;
        var interval = FlushInterval;
        var writer = context.Response.BodyWriter;
        byte[]? rented = null;
        long copied = 0;
        var unflushed = 0;
        var lastFlush = TimeProvider.GetTimestamp();
        try
        {
            Stream upstream;
            try
            {
                upstream = await response.Content.ReadAsStreamAsync(aborted).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                BodyFailed(context, ex, aborted, copied);
                return -1;
            }
            while (true)
            {
                var started = context.Response.HasStarted;
                var intoWriter = direct && started && (contentLength < 0 || copied < contentLength);
                if (intoWriter && unflushed > 0 && (mode == FlushMode.EveryWrite || !HasBufferedBody(upstream)))
                {
                    // Nothing more is at hand (or every write is flushed): what was read goes out before the next
                    // read, which may wait on the upstream.
                    if (!await FlushAsync(context, writer, aborted).ConfigureAwait(false)) return -1;
                    (unflushed, lastFlush) = (0, TimeProvider.GetTimestamp());
                }
                var dest = intoWriter
                    ? writer.GetMemory(contentLength < 0 ? DirectReadSize : (int)Math.Min(DirectReadSize, contentLength - copied))
                    : (rented ??= pool.Rent(direct ? FirstReadSize : CopyBufferSize));
                int n;
                try
                {
                    var read = upstream.ReadAsync(dest, aborted);
                    if (!intoWriter && unflushed > 0 && !read.IsCompleted)
                    {
                        if (mode == FlushMode.Periodic)
                        {
                            // Bytes are waiting and the upstream is slow: flush them when the interval passes first.
                            var pending = read.AsTask();
                            var waited = interval - TimeProvider.GetElapsedTime(lastFlush);
                            if (waited > TimeSpan.Zero) await Task.WhenAny(pending, Task.Delay(waited, TimeProvider, aborted)).ConfigureAwait(false);
                            if (!pending.IsCompleted && !await FlushAsync(context, writer, aborted).ConfigureAwait(false)) return -1;
                            read = new ValueTask<int>(pending);
                        }
                        else if (!await FlushAsync(context, writer, aborted).ConfigureAwait(false))
                        {
                            // The upstream paused: what it sent so far goes out now rather than wait on it.
                            return -1;
                        }
                        (unflushed, lastFlush) = (0, TimeProvider.GetTimestamp());
                    }
                    n = await read.ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    BodyFailed(context, ex, aborted, copied);
                    return -1;
                }
                if (n == 0)
                {
                    // The last bytes go out before the handler returns (the host does not always send what is left).
                    if (unflushed > 0 && !await FlushAsync(context, writer, aborted).ConfigureAwait(false)) return -1;
                    break;
                }
                copied += n;
                if (intoWriter)
                {
                    // Read straight into the front's buffer: flushed once 32 KiB gathered, or before a read that may wait.
                    writer.Advance(n);
                    unflushed += n;
                    if (unflushed < CopyBufferSize) continue;
                    if (!await FlushAsync(context, writer, aborted).ConfigureAwait(false)) return -1;
                    (unflushed, lastFlush) = (0, TimeProvider.GetTimestamp());
                    continue;
                }
                if (!started)
                {
                    try
                    {
                        // The head and these bytes leave in one write.
                        var r = await writer.WriteAsync(dest[..n], aborted).ConfigureAwait(false);
                        if (r.IsCanceled || r.IsCompleted)
                        {
                            ClientGone(context, null, copied);
                            return -1;
                        }
                    }
                    catch (Exception ex)
                    {
                        ClientGone(context, ex, copied);
                        return -1;
                    }
                    lastFlush = TimeProvider.GetTimestamp();
                    continue;
                }
                try
                {
                    writer.Write(dest.Span[..n]);
                }
                catch (Exception ex)
                {
                    ClientGone(context, ex, copied);
                    return -1;
                }
                unflushed += n;
                var due = mode switch
                {
                    FlushMode.EveryWrite => true,
                    FlushMode.Periodic => unflushed >= CopyBufferSize || TimeProvider.GetElapsedTime(lastFlush) >= interval,
                    _ => unflushed >= CopyBufferSize,
                };
                if (!due) continue;
                if (!await FlushAsync(context, writer, aborted).ConfigureAwait(false)) return -1;
                (unflushed, lastFlush) = (0, TimeProvider.GetTimestamp());
            }
            return copied;
        }
        finally
        {
            if (rented is not null) pool.Return(rented);
        }
    }

    /// <summary>True when a read of <paramref name="upstream"/> would not wait: our Transport's body says so (bytes
    /// already received, or its end); any other stream is assumed to wait.</summary>
    private static bool HasBufferedBody(Stream upstream) => upstream is BodyReadStream body && body.HasBufferedBody();

    private async ValueTask<bool> FlushAsync(HttpContext context, System.IO.Pipelines.PipeWriter writer, CancellationToken aborted)
    {
        try
        {
            var r = await writer.FlushAsync(aborted).ConfigureAwait(false);
            if (!r.IsCanceled && !r.IsCompleted) return true;
            ClientGone(context, null, -1);
        }
        catch (Exception ex)
        {
            ClientGone(context, ex, -1);
        }
        return false;
    }

    private void BodyFailed(HttpContext context, Exception ex, CancellationToken aborted, long copied)
    {
        if (aborted.IsCancellationRequested)
        {
            ClientGone(context, ex, copied);
            return;
        }
        Logger(context).LogError(ex, "the upstream response body for {Method} {Target} failed after {Bytes} bytes; the client's connection is aborted",
            context.Request.Method, ProxyUrls.RawTarget(context), copied);
        context.Abort();
    }

    private void ClientGone(HttpContext context, Exception? ex, long copied)
    {
        Logger(context).LogDebug(ex, "the client went away while the response to {Method} {Target} was copied ({Bytes} bytes)",
            context.Request.Method, ProxyUrls.RawTarget(context), copied);
        context.Abort();
    }

    /// <summary>A 101: checked by the core, then a tunnel between the client's upgraded connection and the upstream's.</summary>
    private async Task SwitchAsync(HttpContext context, HopPlan plan, HttpResponseMessage response)
    {
        var fields = ResponseFields(response);
        var got = Forwarding.upgradeOf(FieldValue(fields, "Connection"), FieldValue(fields, "Upgrade"));
        if (Forwarding.checkSwitch(plan.Upgrade, got) is { } mismatch)
        {
            await FailAsync(context, new ReverseProxyException(ProxyError.UpgradeMismatch, mismatch)).ConfigureAwait(false);
            return;
        }
        var upgrade = context.Features.Get<IHttpUpgradeFeature>();
        if (upgrade is null || !upgrade.IsUpgradableRequest)
        {
            await FailAsync(context, new ReverseProxyException(ProxyError.UpgradeUnavailable,
                "the upstream switched protocols, but this front connection cannot be upgraded (HTTP/2, or no upgrade feature)")).ConfigureAwait(false);
            return;
        }
        var responsePlan = Forwarding.planResponse(null, got);
        foreach (var (name, value) in fields)
        {
            if (Forwarding.responseFieldFate(responsePlan, true, name) == FieldFate.Forward) context.Response.Headers.Append(name, value);
        }
        Stream upstream, client;
        try
        {
            upstream = await response.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
            client = await upgrade.UpgradeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Logger(context).LogError(ex, "switching protocols for {Target} failed", ProxyUrls.RawTarget(context));
            context.Abort();
            return;
        }
        await using (upstream.ConfigureAwait(false))
        {
            await UpgradeTunnel.RunAsync(client, upstream, BufferPool ?? SharedBufferPool.Instance, CopyBufferSize, Logger(context))
                .ConfigureAwait(false);
        }
    }

    /// <summary>A response's fields as (name, value) lines: the wire head when there is one, else the .NET headers.</summary>
    private static List<(string Name, string Value)> ResponseFields(HttpResponseMessage response)
    {
        var all = new List<(string, string)>();
        if (response.GetWireHead() is { } head)
        {
            foreach (var f in head.Headers.AsSpan()) all.Add((f.Name, f.Value));
            return all;
        }
        foreach (var (name, values) in response.Headers.NonValidated)
        {
            foreach (var v in values) all.Add((name, v));
        }
        return all;
    }

    private static string? FieldValue(List<(string Name, string Value)> fields, string name)
    {
        string? joined = null;
        foreach (var (n, v) in fields)
        {
            if (string.Equals(n, name, StringComparison.OrdinalIgnoreCase)) joined = joined is null ? v : joined + ", " + v;
        }
        return joined;
    }

    private async Task FailAsync(HttpContext context, ReverseProxyException error)
    {
        ProxyTelemetry.Failed(context, error);
        if (context.Response.HasStarted || ProxyErrors.abortsClient(error.Error))
        {
            Logger(context).Log(error.IsClientSide ? LogLevel.Debug : LogLevel.Error, error.InnerException,
                "{Message}; the client's connection is aborted", error.Message);
            context.Abort();
            return;
        }
        if (ErrorHandler is { } handler)
        {
            await handler(context, error).ConfigureAwait(false);
            return;
        }
        Logger(context).Log(error.IsClientSide ? LogLevel.Debug : LogLevel.Error, error.InnerException,
            "{Method} {Target}: {Message} ({Error})", context.Request.Method, ProxyUrls.RawTarget(context), error.Message, error.Error);
        if (error.Status == 0)
        {
            context.Abort();
            return;
        }
        context.Response.Clear();
        context.Response.StatusCode = error.Status;
    }

    private void LogExchange(HttpContext context, HttpRequestMessage outgoing, int status, long bytes, RequestTimings t) =>
        Logger(context).LogDebug(
            "{Method} {Target} -> {Upstream}: {Status}, {Bytes} bytes, reused {Reused}; dns {Dns:F3} connect {Connect:F3} tls {Tls:F3} wait {Wait:F3} total {Total:F3} ms",
            context.Request.Method, ProxyUrls.RawTarget(context), outgoing.RequestUri, status, bytes, t.Reused, Ms(t.DnsLookup), Ms(t.TcpConnection),
            Ms(t.TlsHandshake), Ms(t.ServerProcessing), Ms(t.UntilHead));

    /// <summary>The <c>Server-Timing</c> value for the upstream exchange: its phases up to the response head.</summary>
    private static string ServerTimingOf(RequestTimings t) =>
        Forwarding.serverTiming(Ms(t.DnsLookup), Ms(t.TcpConnection), Ms(t.TlsHandshake), Ms(t.ServerProcessing), Ms(t.UntilHead));

    /// <summary>Milliseconds, NaN for a phase that did not happen.</summary>
    private static double Ms(TimeSpan? phase) => phase is { } p ? p.TotalMilliseconds : double.NaN;

    internal void NoteQuerySanitized(string query)
    {
        if (Interlocked.Exchange(ref querySanitizedLogged, 1) == 0)
            (ErrorLog ?? hostLogger ?? StandardErrorLogger.Instance).LogWarning(
                "dropped query parameters holding ';' or a bad %-escape (logged once per proxy): {Query}", query);
    }

    private ILogger Logger(HttpContext context)
    {
        if (ErrorLog is { } log) return log;
        if (hostLogger is { } host) return host;
        var factory = context.RequestServices?.GetService<ILoggerFactory>();
        return hostLogger = factory?.CreateLogger("HttpUtil.ReverseProxy") ?? StandardErrorLogger.Instance;
    }
}
