using System.Net;
using HttpUtil.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace HttpUtil;

/// <summary>
/// One request on its way through a <see cref="ReverseProxy"/>, as the <see cref="ReverseProxy.Rewrite"/> hook sees
/// it (Go's <c>httputil.ProxyRequest</c>): the incoming request, read-only by convention, and the outgoing one,
/// which the hook changes. When the hook runs, the outgoing request already lacks the hop-by-hop fields and the
/// client-sent <c>Forwarded</c> and <c>X-Forwarded-*</c>; what the hook adds is sent as it is.
/// </summary>
public sealed class ProxyRequest
{
    internal ProxyRequest(HttpContext incoming, HttpRequestMessage outgoing, ReverseProxy proxy)
    {
        In = incoming;
        Out = outgoing;
        Proxy = proxy;
    }

    /// <summary>The request as the client sent it. Do not change it.</summary>
    public HttpContext In { get; }

    /// <summary>The request that will be sent upstream.</summary>
    public HttpRequestMessage Out { get; }

    internal ReverseProxy Proxy { get; }

    /// <summary>
    /// Routes the outgoing request to <paramref name="target"/>'s scheme, host and port, with the target's path and the
    /// incoming path joined by exactly one slash (the escaped forms, so <c>%2F</c> stays as sent) and the queries
    /// joined with <c>&amp;</c>. The outgoing <c>Host</c> becomes the target's (Go's <c>SetURL</c>); set
    /// <c>Out.Headers.Host</c> afterwards to send another.
    /// </summary>
    /// <param name="target">An absolute http or https URI.</param>
    /// <exception cref="ArgumentException"><paramref name="target"/> is not an absolute http or https URI.</exception>
    public void SetUrl(Uri target)
    {
        Out.RequestUri = ProxyUrls.Upstream(target, In, Proxy);
        Out.Headers.Host = null;
    }

    /// <summary>
    /// Sets <c>X-Forwarded-For</c> (the client's address appended to the outgoing request's value, which the
    /// proxy emptied; copy the incoming value into <c>Out</c> first to keep the chain), <c>X-Forwarded-Host</c>
    /// (the incoming Host) and <c>X-Forwarded-Proto</c> (<c>http</c> or <c>https</c>). With no known client address,
    /// <c>X-Forwarded-For</c> is left as it is.
    /// </summary>
    public void SetXForwarded()
    {
        var headers = Out.Headers;
        if (ProxyUrls.ClientAddress(In) is { } client)
        {
            var prior = headers.TryGetValues("X-Forwarded-For", out var v) ? string.Join(", ", v) : null;
            headers.Remove("X-Forwarded-For");
            headers.TryAddWithoutValidation("X-Forwarded-For", Forwarding.appendForwardedFor(prior, client));
        }
        headers.Remove("X-Forwarded-Host");
        if (In.Request.Host.HasValue) headers.TryAddWithoutValidation("X-Forwarded-Host", In.Request.Host.Value);
        headers.Remove("X-Forwarded-Proto");
        headers.TryAddWithoutValidation("X-Forwarded-Proto", Forwarding.forwardedProto(In.Request.IsHttps));
    }

    /// <summary>
    /// Appends an RFC 7239 <c>Forwarded</c> element (<c>for</c> the client's address, <c>host</c> the incoming Host,
    /// <c>proto</c>) to the outgoing request's <c>Forwarded</c> value. With no known client address, <c>for</c> is
    /// <c>unknown</c>.
    /// </summary>
    public void SetForwarded()
    {
        var headers = Out.Headers;
        var prior = headers.TryGetValues("Forwarded", out var v) ? string.Join(", ", v) : null;
        var element = Forwarding.forwardedElement(ProxyUrls.ClientAddress(In) ?? "unknown",
            In.Request.Host.HasValue ? In.Request.Host.Value : null, Forwarding.forwardedProto(In.Request.IsHttps));
        headers.Remove("Forwarded");
        headers.TryAddWithoutValidation("Forwarded", Forwarding.appendForwarded(prior, element));
    }
}

/// <summary>An upstream's parts, taken apart once: <c>scheme://authority</c>, the escaped path, the query without
/// <c>?</c>.</summary>
internal sealed record UpstreamTarget(string Authority, string Path, string Query)
{
    /// <summary>The parts of <paramref name="target"/>.</summary>
    /// <exception cref="ArgumentException">Not an absolute http or https URI.</exception>
    public static UpstreamTarget Of(Uri target)
    {
        if (!target.IsAbsoluteUri || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"the upstream must be an absolute http or https URI, not {target}", nameof(target));
        return new UpstreamTarget(target.GetLeftPart(UriPartial.Authority), target.AbsolutePath, target.Query.Length > 0 ? target.Query[1..] : "");
    }
}

/// <summary>Upstream URIs and client addresses, from the core's rules.</summary>
internal static class ProxyUrls
{
    /// <summary>The incoming request-target as sent (origin-form; the path and query of an absolute-form one).</summary>
    public static string RawTarget(HttpContext context)
    {
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (!string.IsNullOrEmpty(raw)) return raw;
        var r = context.Request;
        return r.PathBase.ToUriComponent() + r.Path.ToUriComponent() + r.QueryString.ToUriComponent();
    }

    /// <summary>The upstream URI for <paramref name="context"/>'s request sent to <paramref name="target"/>.</summary>
    public static Uri Upstream(Uri target, HttpContext context, ReverseProxy proxy) => Upstream(UpstreamTarget.Of(target), context, proxy);

    /// <summary>The upstream URI for <paramref name="context"/>'s request sent to <paramref name="target"/>.</summary>
    public static Uri Upstream(UpstreamTarget target, HttpContext context, ReverseProxy proxy)
    {
        var (path, query) = Forwarding.splitTarget(RawTarget(context));
        if (query.Length > 0 && Forwarding.sanitizeQuery(query) is { } clean)
        {
            proxy.NoteQuerySanitized(query);
            query = clean;
        }
        var joinedQuery = Forwarding.joinQuery(target.Query, query);
        var joined = Forwarding.joinPath(target.Path, path);
        var text = joinedQuery.Length == 0
            ? string.Concat(target.Authority, joined)
            : string.Concat(target.Authority, joined, "?", joinedQuery);
        return new Uri(text, UriKind.Absolute);
    }

    /// <summary>The client's IP address as text (IPv4-mapped IPv6 addresses as IPv4), or null when unknown.</summary>
    public static string? ClientAddress(HttpContext context)
    {
        var ip = context.Connection.RemoteIpAddress;
        if (ip is null) return null;
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        return ip.Equals(IPAddress.Loopback) ? "127.0.0.1" : ip.ToString();
    }
}
