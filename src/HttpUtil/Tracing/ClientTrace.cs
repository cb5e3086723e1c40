using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>What <see cref="ClientTrace.GetConn"/> reports.</summary>
/// <param name="HostPort">The "host:port" a connection is wanted for (IPv6 hosts in brackets).</param>
public sealed record GetConnInfo(string HostPort);

/// <summary>What <see cref="ClientTrace.PutIdleConn"/> reports.</summary>
/// <param name="Error">Null when the connection went back to the idle pool; otherwise why it could not
/// (too many idle, the exchange did not end cleanly, the body was not read to its end within the drain limit).</param>
public sealed record PutIdleConnInfo(Exception? Error);

/// <summary>What <see cref="ClientTrace.Got1xxResponse"/> reports.</summary>
/// <param name="Status">The interim status code (102, 103...; never 100 or 101).</param>
/// <param name="Headers">Its fields, in wire order.</param>
public sealed record Got1xxResponseInfo(int Status, Headers Headers);

/// <summary>What <see cref="ClientTrace.ConnectStart"/> reports.</summary>
/// <param name="Network">"tcp".</param>
/// <param name="Address">The address tried ("127.0.0.1:443", "[::1]:80").</param>
public sealed record ConnectStartInfo(string Network, string Address);

/// <summary>What <see cref="ClientTrace.ConnectDone"/> reports.</summary>
/// <param name="Network">"tcp".</param>
/// <param name="Address">The address tried.</param>
/// <param name="Error">Why the attempt failed, or null when it connected.</param>
public sealed record ConnectDoneInfo(string Network, string Address, Exception? Error);

/// <summary>What <see cref="ClientTrace.TlsHandshakeDone"/> reports.</summary>
/// <param name="State">The negotiated state, or null when the handshake failed.</param>
/// <param name="Error">Why it failed, or null.</param>
public sealed record TlsHandshakeDoneInfo(TlsConnectionState? State, Exception? Error);

/// <summary>What <see cref="ClientTrace.WroteHeaderField"/> reports.</summary>
/// <param name="Name">The field name, as written.</param>
/// <param name="Values">Its values (one per field line).</param>
public sealed record WroteHeaderFieldInfo(string Name, IReadOnlyList<string> Values);

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
/// <para>Every hook has one shape: an <see cref="Action"/> for an event that carries nothing, an
/// <see cref="Action{T}"/> of an info record for one that does.</para>
/// <para>A hook that throws fails the operation that fired it with a <see cref="ClientTraceException"/>
/// around what it threw: the request (<c>SendAsync</c>, <c>WriteAsync</c>, <c>ReadAsync</c>), or for
/// <see cref="PutIdleConn"/> the body read that reached the end. The connection is then closed, never
/// reused. That is also how <see cref="Got1xxResponse"/> aborts a request (Go's hook returns an error).</para>
/// </remarks>
public sealed class ClientTrace
{
    private static readonly HttpRequestOptionsKey<ClientTrace> Key = new("HttpUtil.ClientTrace");

    private ClientTrace[]? layers;

    /// <summary>Before a connection is got for the request: the "host:port" it is for.</summary>
    public Action<GetConnInfo>? GetConn { get; init; }

    /// <summary>A connection was got, new or from the idle pool.</summary>
    public Action<GotConnInfo>? GotConn { get; init; }

    /// <summary>The connection went back to the idle pool (null) or could not (why: too many idle,
    /// the exchange did not end cleanly, the body was not read to its end within the drain limit).</summary>
    public Action<PutIdleConnInfo>? PutIdleConn { get; init; }

    /// <summary>The first byte of the response arrived.</summary>
    public Action? GotFirstResponseByte { get; init; }

    /// <summary>The server answered <c>100 Continue</c>.</summary>
    public Action? Got100Continue { get; init; }

    /// <summary>An interim 1xx response other than 100 arrived (101 is final): its code and fields. Throw to
    /// abort the request (it fails with <see cref="ClientTraceException"/> around what was thrown).</summary>
    public Action<Got1xxResponseInfo>? Got1xxResponse { get; init; }

    /// <summary>A DNS lookup starts.</summary>
    public Action<DnsStartInfo>? DnsStart { get; init; }

    /// <summary>A DNS lookup ended.</summary>
    public Action<DnsDoneInfo>? DnsDone { get; init; }

    /// <summary>A connection attempt starts, once per address tried.</summary>
    public Action<ConnectStartInfo>? ConnectStart { get; init; }

    /// <summary>A connection attempt ended: connected, or the error.</summary>
    public Action<ConnectDoneInfo>? ConnectDone { get; init; }

    /// <summary>The TLS handshake starts.</summary>
    public Action? TlsHandshakeStart { get; init; }

    /// <summary>The TLS handshake ended: the state, or the error.</summary>
    public Action<TlsHandshakeDoneInfo>? TlsHandshakeDone { get; init; }

    /// <summary>A header field line was written: name and values, in wire order, once per line.</summary>
    public Action<WroteHeaderFieldInfo>? WroteHeaderField { get; init; }

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
        // Reading Options creates the request's options dictionary: skip it until a trace was ever attached.
        if (!anyAttached) return null;
        return request.Options.TryGetValue(Key, out var trace) ? trace : null;
    }

    private static volatile bool anyAttached;

    private ClientTrace[] Layers => layers ?? [this];

    internal static void Attach(HttpRequestMessage request, ClientTrace trace)
    {
        anyAttached = true;
        var old = FromRequest(request);
        if (old is null)
        {
            request.Options.Set(Key, trace);
            return;
        }
        request.Options.Set(Key, Compose(CoreAdapter.ComposeLayers(trace.Layers, old.Layers)));
    }

    private static ClientTrace Compose(ClientTrace[] all)
    {
        if (all.Length == 1) return all[0];
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
        return new ClientTrace
        {
            layers = all,
            GetConn = Each1<GetConnInfo>(t => t.GetConn),
            GotConn = Each1<GotConnInfo>(t => t.GotConn),
            PutIdleConn = Each1<PutIdleConnInfo>(t => t.PutIdleConn),
            GotFirstResponseByte = Each(t => t.GotFirstResponseByte),
            Got100Continue = Each(t => t.Got100Continue),
            Got1xxResponse = Each1<Got1xxResponseInfo>(t => t.Got1xxResponse),
            DnsStart = Each1<DnsStartInfo>(t => t.DnsStart),
            DnsDone = Each1<DnsDoneInfo>(t => t.DnsDone),
            ConnectStart = Each1<ConnectStartInfo>(t => t.ConnectStart),
            ConnectDone = Each1<ConnectDoneInfo>(t => t.ConnectDone),
            TlsHandshakeStart = Each(t => t.TlsHandshakeStart),
            TlsHandshakeDone = Each1<TlsHandshakeDoneInfo>(t => t.TlsHandshakeDone),
            WroteHeaderField = Each1<WroteHeaderFieldInfo>(t => t.WroteHeaderField),
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
}
