using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using HttpUtil.Core;
using Microsoft.FSharp.Collections;

namespace HttpUtil;

/// <summary>What <see cref="ClientTrace.GotConn"/> reports about the connection a request got.</summary>
/// <param name="Stream">The connection's stream (an <see cref="SslStream"/> for https). Do not read or write it.</param>
/// <param name="Reused">True when the connection carried an earlier request.</param>
/// <param name="WasIdle">True when it came from the idle pool.</param>
/// <param name="IdleTime">How long it sat idle; zero unless <paramref name="WasIdle"/>.</param>
public sealed record GotConnInfo(Stream Stream, bool Reused, bool WasIdle, TimeSpan IdleTime);

/// <summary>What <see cref="ClientTrace.DnsStart"/> reports.</summary>
/// <param name="Host">The host name being resolved.</param>
public sealed record DnsStartInfo(string Host);

/// <summary>What <see cref="ClientTrace.DnsDone"/> reports.</summary>
/// <param name="Addresses">The addresses found; empty on error.</param>
/// <param name="Error">Why the lookup failed, or null.</param>
/// <param name="Coalesced">True when this request joined a lookup of the same host already in flight.</param>
public sealed record DnsDoneInfo(IReadOnlyList<IPAddress> Addresses, Exception? Error, bool Coalesced);

/// <summary>The negotiated TLS state of a connection.</summary>
/// <param name="Protocol">The TLS version.</param>
/// <param name="CipherSuite">The cipher suite.</param>
/// <param name="ApplicationProtocol">The ALPN protocol ("http/1.1"), or empty when none was negotiated.</param>
/// <param name="RemoteCertificate">The server's certificate, or null.</param>
public sealed record TlsConnectionState(SslProtocols Protocol, TlsCipherSuite CipherSuite, string ApplicationProtocol, X509Certificate? RemoteCertificate);

/// <summary>What <see cref="ClientTrace.WroteRequest"/> reports.</summary>
/// <param name="Error">Why writing the request failed, or null when it was written whole.</param>
public sealed record WroteRequestInfo(Exception? Error);

/// <summary>A trace hook threw. The operation that fired it failed with this exception; the
/// connection it ran on is closed, never reused.</summary>
public sealed class ClientTraceException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="hook">The hook's name, as the <see cref="ClientTrace"/> property is called.</param>
    /// <param name="inner">What the hook threw.</param>
    public ClientTraceException(string hook, Exception inner)
        : base($"the ClientTrace hook {hook} threw: {inner.Message}", inner)
    {
        Hook = hook;
    }

    /// <summary>The hook's name.</summary>
    public string Hook { get; }
}

/// <summary>
/// Hooks into the life of one client request (Go's <c>httptrace.ClientTrace</c>). Every hook is
/// optional. Attach a trace with <see cref="ClientTraceExtensions.WithClientTrace"/>; <see cref="Transport"/>
/// fires all hooks, a bare <see cref="ClientConn"/> the ones about writing and reading.
/// </summary>
/// <remarks>
/// <para>Hooks may run on any thread, one at a time per request. They should return quickly: the request
/// waits for them.</para>
/// <para>After the response has been returned only <see cref="PutIdleConn"/> runs (when the body is read to
/// its end or disposed), from the thread that read or disposed the body.</para>
/// <para>A hook that throws fails the operation that fired it with a <see cref="ClientTraceException"/>:
/// the request (<c>SendAsync</c>, <c>WriteAsync</c>, <c>ReadAsync</c>), or for <see cref="PutIdleConn"/> the
/// body read that reached the end. The connection is then closed, never reused.</para>
/// </remarks>
public sealed class ClientTrace
{
    private static readonly HttpRequestOptionsKey<ClientTrace> Key = new("HttpUtil.ClientTrace");

    private FSharpList<ClientTrace>? layers;

    /// <summary>Before a connection is got for the request: the "host:port" it is for.</summary>
    public Action<string>? GetConn { get; init; }

    /// <summary>A connection was got, new or from the idle pool.</summary>
    public Action<GotConnInfo>? GotConn { get; init; }

    /// <summary>The connection went back to the idle pool (null) or could not (why: too many idle,
    /// the exchange did not end cleanly, the body was not read to its end within the drain limit).</summary>
    public Action<Exception?>? PutIdleConn { get; init; }

    /// <summary>The first byte of the response arrived.</summary>
    public Action? GotFirstResponseByte { get; init; }

    /// <summary>The server answered <c>100 Continue</c>.</summary>
    public Action? Got100Continue { get; init; }

    /// <summary>An interim 1xx response other than 100 arrived (101 is final): its code and fields.
    /// Return an exception to abort the request with it; null to go on.</summary>
    public Func<int, Headers, Exception?>? Got1xxResponse { get; init; }

    /// <summary>A DNS lookup starts.</summary>
    public Action<DnsStartInfo>? DnsStart { get; init; }

    /// <summary>A DNS lookup ended.</summary>
    public Action<DnsDoneInfo>? DnsDone { get; init; }

    /// <summary>A connection attempt starts: network ("tcp") and address ("127.0.0.1:443"), once per address tried.</summary>
    public Action<string, string>? ConnectStart { get; init; }

    /// <summary>A connection attempt ended: network, address and the error, or null when it connected.</summary>
    public Action<string, string, Exception?>? ConnectDone { get; init; }

    /// <summary>The TLS handshake starts.</summary>
    public Action? TlsHandshakeStart { get; init; }

    /// <summary>The TLS handshake ended: the state (null on error) and the error (null on success).</summary>
    public Action<TlsConnectionState?, Exception?>? TlsHandshakeDone { get; init; }

    /// <summary>A header field line was written: name and values, in wire order, once per line.</summary>
    public Action<string, IReadOnlyList<string>>? WroteHeaderField { get; init; }

    /// <summary>The whole head was written.</summary>
    public Action? WroteHeaders { get; init; }

    /// <summary>The head said <c>Expect: 100-continue</c> and the body waits for the server's answer.</summary>
    public Action? Wait100Continue { get; init; }

    /// <summary>The request was written whole, or writing it failed.</summary>
    public Action<WroteRequestInfo>? WroteRequest { get; init; }

    /// <summary>The trace attached to <paramref name="request"/> (all attached traces composed), or null.</summary>
    /// <param name="request">The request.</param>
    /// <returns>The trace, or null when none is attached.</returns>
    public static ClientTrace? FromRequest(HttpRequestMessage request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request.Options.TryGetValue(Key, out var trace) ? trace : null;
    }

    private FSharpList<ClientTrace> Layers => layers ?? FSharpList<ClientTrace>.Cons(this, FSharpList<ClientTrace>.Empty);

    internal static void Attach(HttpRequestMessage request, ClientTrace trace)
    {
        var old = FromRequest(request);
        if (old is null)
        {
            request.Options.Set(Key, trace);
            return;
        }
        request.Options.Set(Key, Compose(Trace.compose(trace.Layers, old.Layers)));
    }

    private static ClientTrace Compose(FSharpList<ClientTrace> layers)
    {
        if (layers.Length == 1) return layers.Head;
        var all = layers.ToArray();
        Action? Each(Func<ClientTrace, Action?> pick)
        {
            var hooks = all.Select(pick).OfType<Action>().ToArray();
            return hooks.Length == 0 ? null : () => { foreach (var h in hooks) h(); };
        }
        Action<T>? Each1<T>(Func<ClientTrace, Action<T>?> pick)
        {
            var hooks = all.Select(pick).OfType<Action<T>>().ToArray();
            return hooks.Length == 0 ? null : a => { foreach (var h in hooks) h(a); };
        }
        Action<T1, T2>? Each2<T1, T2>(Func<ClientTrace, Action<T1, T2>?> pick)
        {
            var hooks = all.Select(pick).OfType<Action<T1, T2>>().ToArray();
            return hooks.Length == 0 ? null : (a, b) => { foreach (var h in hooks) h(a, b); };
        }
        var connectDone = all.Select(t => t.ConnectDone).OfType<Action<string, string, Exception?>>().ToArray();
        var got1xx = all.Select(t => t.Got1xxResponse).OfType<Func<int, Headers, Exception?>>().ToArray();
        return new ClientTrace
        {
            layers = layers,
            GetConn = Each1<string>(t => t.GetConn),
            GotConn = Each1<GotConnInfo>(t => t.GotConn),
            PutIdleConn = Each1<Exception?>(t => t.PutIdleConn),
            GotFirstResponseByte = Each(t => t.GotFirstResponseByte),
            Got100Continue = Each(t => t.Got100Continue),
            Got1xxResponse = got1xx.Length == 0 ? null : (code, headers) =>
            {
                foreach (var h in got1xx)
                {
                    if (h(code, headers) is { } abort) return abort;
                }
                return null;
            },
            DnsStart = Each1<DnsStartInfo>(t => t.DnsStart),
            DnsDone = Each1<DnsDoneInfo>(t => t.DnsDone),
            ConnectStart = Each2<string, string>(t => t.ConnectStart),
            ConnectDone = connectDone.Length == 0 ? null : (n, a, e) => { foreach (var h in connectDone) h(n, a, e); },
            TlsHandshakeStart = Each(t => t.TlsHandshakeStart),
            TlsHandshakeDone = Each2<TlsConnectionState?, Exception?>(t => t.TlsHandshakeDone),
            WroteHeaderField = Each2<string, IReadOnlyList<string>>(t => t.WroteHeaderField),
            WroteHeaders = Each(t => t.WroteHeaders),
            Wait100Continue = Each(t => t.Wait100Continue),
            WroteRequest = Each1<WroteRequestInfo>(t => t.WroteRequest),
        };
    }
}

/// <summary>Attaching traces to requests.</summary>
public static class ClientTraceExtensions
{
    /// <summary>
    /// Attaches <paramref name="trace"/> to <paramref name="request"/> (Go's <c>WithClientTrace</c>). When a
    /// trace is attached already, the two compose: the new hooks run first, then the old. Neither trace
    /// changes (the request gets a new composed trace), and a trace attached twice fires once.
    /// </summary>
    /// <param name="request">The request; it is changed and returned.</param>
    /// <param name="trace">The hooks to add.</param>
    /// <returns><paramref name="request"/>, for chaining.</returns>
    public static HttpRequestMessage WithClientTrace(this HttpRequestMessage request, ClientTrace trace)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(trace);
        ClientTrace.Attach(request, trace);
        return request;
    }
}

/// <summary>Fires hooks, turning a hook's exception into <see cref="ClientTraceException"/>.</summary>
internal static class Hooks
{
    public static void Fire(string name, Action? hook)
    {
        if (hook is null) return;
        try { hook(); }
        catch (Exception ex) { throw new ClientTraceException(name, ex); }
    }

    public static void Fire<T>(string name, Action<T>? hook, T arg)
    {
        if (hook is null) return;
        try { hook(arg); }
        catch (Exception ex) { throw new ClientTraceException(name, ex); }
    }

    public static void Fire<T1, T2>(string name, Action<T1, T2>? hook, T1 a, T2 b)
    {
        if (hook is null) return;
        try { hook(a, b); }
        catch (Exception ex) { throw new ClientTraceException(name, ex); }
    }

    public static void Fire<T1, T2, T3>(string name, Action<T1, T2, T3>? hook, T1 a, T2 b, T3 c)
    {
        if (hook is null) return;
        try { hook(a, b, c); }
        catch (Exception ex) { throw new ClientTraceException(name, ex); }
    }

    public static Exception? Ask(string name, Func<int, Headers, Exception?>? hook, int code, Headers headers)
    {
        if (hook is null) return null;
        try { return hook(code, headers); }
        catch (Exception ex) { throw new ClientTraceException(name, ex); }
    }
}
