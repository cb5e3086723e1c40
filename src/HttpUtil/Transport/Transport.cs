using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// An HTTP/1.1 <see cref="HttpMessageHandler"/> that owns its connections (Go's <c>http.Transport</c>
/// for HTTP/1.x): a pool per scheme, host and port, DNS lookups shared between concurrent requests,
/// TLS, forward proxies, <c>Expect: 100-continue</c>, and every <see cref="ClientTrace"/> hook. Use it as
/// <c>new HttpClient(new Transport())</c> or through <see cref="HttpMessageInvoker"/>.
/// </summary>
/// <remarks>
/// <para>Each request runs on one <see cref="ClientConn"/> at a time (no pipelining). A connection goes
/// back to the idle pool only when the core says the exchange ended cleanly (no error, nothing pending,
/// no <c>Connection: close</c>) and the response body was read to its end, or, when the body is disposed
/// early, drained within <see cref="MaxResponseDrainBytes"/> and <see cref="ResponseDrainTimeout"/>.</para>
/// <para>A request whose reused idle connection dies (reset, closed, a failed send) before any response byte
/// arrived is sent once more on a new connection when its method is idempotent (or it has an
/// <c>Idempotency-Key</c>) and its content can be sent again (none, or in-memory content such as
/// <see cref="ByteArrayContent"/>), as Go's Transport does: a server may close an idle connection just as a
/// request goes out.</para>
/// <para>Failures to resolve, connect, handshake, write or read throw <see cref="HttpRequestException"/>
/// with the cause inside; cancellation throws <see cref="OperationCanceledException"/>; a hook that throws
/// gives <see cref="ClientTraceException"/>.</para>
/// </remarks>
public sealed class Transport : HttpMessageHandler
{
    private readonly ConcurrentDictionary<PoolKey, HostPool> pools = new();
    private readonly Dialer dialer;
    private readonly object sweeperGate = new();
    private ITimer? sweeper;
    private volatile bool disposed;

    /// <summary>A transport with the defaults below.</summary>
    public Transport()
    {
        dialer = new Dialer(this);
    }

    /// <summary>Most idle connections kept per host (default 2, as Go's). Beyond it a finished connection is closed.</summary>
    public int MaxIdleConnsPerHost { get; init; } = 2;

    /// <summary>Most connections per host, idle, dialling and busy together; 0 (the default) for no limit.
    /// Requests beyond it wait for a connection.</summary>
    public int MaxConnsPerHost { get; init; }

    /// <summary>The clock for idle times and the idle sweep (default <see cref="TimeProvider.System"/>); tests
    /// pass a fake one to move time by hand.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>How often idle connections past <see cref="IdleConnTimeout"/> are looked for and closed (default 1 s).</summary>
    public TimeSpan IdleSweepInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long an idle connection is kept (default 90 s).</summary>
    public TimeSpan IdleConnTimeout { get; init; } = TimeSpan.FromSeconds(90);

    /// <summary>
    /// How long an idle connection sits unused before a request that may be sent again (an idempotent method or an
    /// <c>Idempotency-Key</c>, and in-memory content) checks it, with a poll, for a close or stray bytes from the
    /// server before using it (default 1 s). Below that it is used at once, as Go's Transport does: servers close
    /// idle connections after seconds, and should one have closed it sooner, the request is sent again on a new
    /// connection. A request that may not be sent again always checks; <see cref="TimeSpan.Zero"/> checks every reuse.
    /// </summary>
    public TimeSpan IdleProbeAfter { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long one TCP connect may take, per address tried (default 30 s).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a TLS handshake may take (Go's <c>TLSHandshakeTimeout</c>; its DefaultTransport's 10 s); null
    /// for no limit. Past it the request fails with <see cref="HttpRequestException"/> around a
    /// <see cref="TimeoutException"/> that names this setting, and the connection is closed.</summary>
    public TimeSpan? TlsHandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait for the response head once the request (body included) was written (Go's
    /// <c>ResponseHeaderTimeout</c>); null (the default, as in Go) for no limit beyond the caller's token. Past it the
    /// request fails with <see cref="HttpRequestException"/> around a <see cref="TimeoutException"/> that names this
    /// setting, the connection is closed, and the request is not sent again.</summary>
    public TimeSpan? ResponseHeaderTimeout { get; init; }

    /// <summary>How long a read of a response body may wait for its next byte (as YARP's activity timeout does for a
    /// proxied body); null (the default, as in Go and SocketsHttpHandler) for no limit beyond the caller's token. Past
    /// it (checked four times a second) the read throws <see cref="IOException"/> around a <see cref="TimeoutException"/>
    /// that names the setting, and the connection is closed, never pooled. Only time spent waiting on a read counts;
    /// a read costs no timer of its own (<see cref="ClientConn.BodyIdleTimeout"/>).</summary>
    public TimeSpan? ResponseBodyIdleTimeout
    {
        get => responseBodyIdleTimeout;
        init => responseBodyIdleTimeout = TimeLimit.PositiveOrNone(value);
    }

    private readonly TimeSpan? responseBodyIdleTimeout;

    /// <summary>How long a request with <c>Expect: 100-continue</c> waits for the server before sending its
    /// body anyway (default 1 s); null sends the body at once.</summary>
    public TimeSpan? ExpectContinueTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Most bytes of an unread response body drained to reuse the connection (default 256 KiB).</summary>
    public long MaxResponseDrainBytes { get; init; } = 256 * 1024;

    /// <summary>How long draining an unread response body (after the caller disposed it early) may take before
    /// the connection is closed instead of reused (default 1 s).</summary>
    public TimeSpan ResponseDrainTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A forward proxy (<c>http://host:port</c>): http requests go to it in absolute form, https
    /// requests through a CONNECT tunnel. Null (the default) connects directly.</summary>
    public Uri? Proxy { get; init; }

    /// <summary>Checks the server's certificate; null uses the system's validation.</summary>
    public RemoteCertificateValidationCallback? ServerCertificateValidation { get; init; }

    /// <summary>Client certificates offered in TLS handshakes; null for none.</summary>
    public X509CertificateCollection? ClientCertificates { get; init; }

    /// <summary>The limits and leniences used to read responses.</summary>
    public ParserSettings ParserSettings { get; init; } = ParserSettings.Default;

    /// <summary>Puts the trace context of the current activity on each request (W3C <c>traceparent</c> and
    /// <c>tracestate</c> by default), as SocketsHttpHandler's property of the same name does; null sends none. A
    /// request that already carries one of its fields is left as it is. See <see cref="HttpUtilTelemetry"/>.</summary>
    public System.Diagnostics.DistributedContextPropagator? ActivityHeadersPropagator { get; init; } =
        System.Diagnostics.DistributedContextPropagator.Current;

    /// <summary>Idle connections now, all hosts together.</summary>
    public int IdleConnectionCount => pools.Values.Sum(p => p.IdleCount);

    /// <summary>Closes every idle connection now; busy ones are not affected.</summary>
    public void CloseIdleConnections() => Sweep(true);

    private void Sweep(bool all)
    {
        foreach (var p in pools.Values) p.Sweep(all);
    }

    /// <summary>Sends <paramref name="request"/> and returns the response once its head has arrived; the
    /// content streams from the connection.</summary>
    /// <param name="request">An absolute http or https request; HTTP/1.0 or 1.1 (a request for HTTP/2 or
    /// later is sent as HTTP/1.1 unless its version policy demands exactly that version).</param>
    /// <param name="cancellationToken">Cancels every stage up to the response head; the content's reads take their own token.</param>
    /// <returns>The response.</returns>
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        SendCoreAsync(request, cancellationToken).AsTask();

    /// <summary><see cref="SendAsync"/> on a pooled state machine: the per-request object is the task
    /// <see cref="HttpMessageHandler"/> demands, not the whole state of the request as well. Without a telemetry
    /// listener it goes straight to the pool (no extra state machine).</summary>
    internal ValueTask<HttpResponseMessage> SendCoreAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Uri uri;
        try
        {
            ArgumentNullException.ThrowIfNull(request);
            ObjectDisposedException.ThrowIf(disposed, this);
            uri = request.RequestUri!;
            if (uri is null || !uri.IsAbsoluteUri || !CoreAdapter.SupportsScheme(uri.Scheme))
                throw new ArgumentException("the request needs an absolute http or https RequestUri", nameof(request));
        }
        catch (Exception ex)
        {
            return ValueTask.FromException<HttpResponseMessage>(ex);
        }
        request.Version = CoreAdapter.WireVersion(request);
        var proxy = Proxy;
        var target = new PoolKey(uri.Scheme, uri.IdnHost, uri.Port, proxy?.ToString() ?? "");
        // Plain http through a proxy shares the proxy's connections; a tunnel is per target.
        var key = CoreAdapter.Route(uri.Scheme, proxy is not null).AbsoluteForm
            ? new PoolKey(proxy!.Scheme, proxy.IdnHost, proxy.Port, proxy.ToString())
            : target;
        // Before the trace is read: with an activity recording, the telemetry adds its timings to the request's trace.
        var telemetry = ClientTelemetry.Start(request, uri, ActivityHeadersPropagator);
        return telemetry is null
            ? SendOnPoolAsync(request, uri, target, key, proxy, cancellationToken)
            : SendObservedAsync(telemetry, request, uri, target, key, proxy, cancellationToken);
    }

    /// <summary><see cref="SendOnPoolAsync"/> with its telemetry ended when the head arrives or the request fails.</summary>
    private async ValueTask<HttpResponseMessage> SendObservedAsync(ClientTelemetry telemetry, HttpRequestMessage request, Uri uri, PoolKey target,
        PoolKey key, Uri? proxy, CancellationToken cancellationToken)
    {
        try
        {
            var response = await SendOnPoolAsync(request, uri, target, key, proxy, cancellationToken).ConfigureAwait(false);
            telemetry.Stop(response, null);
            return response;
        }
        catch (Exception ex)
        {
            telemetry.Stop(null, ex);
            throw;
        }
    }

    /// <summary>Sends <paramref name="request"/> on a pooled connection, once more on a new one when a reused one died
    /// before the response started.</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<HttpResponseMessage> SendOnPoolAsync(HttpRequestMessage request, Uri uri, PoolKey target, PoolKey key, Uri? proxy,
        CancellationToken cancellationToken)
    {
        var trace = ClientTrace.FromRequest(request);
        var pool = pools.GetOrAdd(key, static (_, t) => t.NewPool(), this);
        var fresh = false;
        var resendable = CoreAdapter.MayResend(request);
        while (true)
        {
            // Per-request hook arguments are built only when the hook is set: no cost without a trace.
            if (trace?.GetConn is { } getConn) Hooks.Fire(nameof(ClientTrace.GetConn), getConn, new GetConnInfo(target.HostPort));
            var (conn, reused) = await GetConnAsync(pool, key, proxy, fresh, resendable, request, uri, trace, cancellationToken).ConfigureAwait(false);
            conn.Used = true;
            try
            {
                await conn.Client.WriteCoreAsync(request, cancellationToken).ConfigureAwait(false);
                var (response, body) = ResponseHeaderTimeout is { } headLimit
                    ? await ReadWithinAsync(conn.Client, request, headLimit, cancellationToken).ConfigureAwait(false)
                    : await conn.Client.ReadCoreAsync(request, cancellationToken).ConfigureAwait(false);
                if (response is WireResponseMessage { Wire.Switching: true }) return await SwitchAsync(pool, conn, response, cancellationToken).ConfigureAwait(false);
                conn.Body = body;
                conn.Trace = trace;
                body.OnEnded(static (c, clean) => ((PooledConnection)c).Owner.Release((PooledConnection)c, clean), conn);
                return response;
            }
            catch (Exception ex)
            {
                pool.Discard(conn);
                if (!fresh && IsRetryable(ex, reused, conn.Client.SawResponseBytes, request))
                {
                    fresh = true;
                    continue;
                }
                throw Wrap(ex);
            }
        }
    }

    /// <summary>Reads the response head within <paramref name="limit"/>; past it, a <see cref="TimeoutException"/>.</summary>
    private static ValueTask<(HttpResponseMessage, BodyReadStream)> ReadWithinAsync(ClientConn client, HttpRequestMessage request,
        TimeSpan limit, CancellationToken ct) =>
        TimeLimit.RunAsync((client, request, limit), static (s, token) => s.client.ReadCoreAsync(s.request, token), limit,
            static s => new TimeoutException($"no response head within {s.limit.TotalSeconds:0.###} s of writing the request (ResponseHeaderTimeout)"),
            ct);

    /// <summary>After a 101: the connection leaves the pool and becomes the response's content, a stream that
    /// reads what the server sends and writes to it (as SocketsHttpHandler hands it out).</summary>
    private static async ValueTask<HttpResponseMessage> SwitchAsync(HostPool pool, PooledConnection conn, HttpResponseMessage response,
        CancellationToken ct)
    {
        var taken = await conn.Client.HijackAsync(ct).ConfigureAwait(false);
        pool.Forget(conn);
        var old = response.Content;
        response.Content = new SwitchedContent(new TunnelStream(taken.Reader, taken.Stream, conn.Socket));
        if (old is not null)
        {
            foreach (var h in old.Headers) response.Content.Headers.TryAddWithoutValidation(h.Key, h.Value);
            old.Dispose();
        }
        return response;
    }

    private HostPool NewPool()
    {
        lock (sweeperGate)
        {
            sweeper ??= TimeProvider.CreateTimer(static t => ((Transport)t!).Sweep(false), this, IdleSweepInterval, IdleSweepInterval);
        }
        return new HostPool(MaxIdleConnsPerHost, MaxConnsPerHost, IdleConnTimeout, IdleProbeAfter, TimeProvider);
    }

    /// <summary>An idle connection, one handed over, or a new one; GotConn reports which.</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<(PooledConnection, bool Reused)> GetConnAsync(HostPool pool, PoolKey key, Uri? proxy, bool fresh,
        bool resendable, HttpRequestMessage request, Uri uri, ClientTrace? trace, CancellationToken ct)
    {
        var queuedSince = HttpUtilTelemetry.TimeInQueue.Enabled ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
        var lease = await pool.AcquireAsync(fresh, resendable, ct).ConfigureAwait(false);
        if (lease.Queued && queuedSince != 0) ClientTelemetry.Queued(request, uri, queuedSince);
        var conn = lease.Connection;
        if (conn is null)
        {
            try
            {
                conn = await dialer.DialAsync(pool, key, proxy, trace, ct).ConfigureAwait(false);
            }
            catch
            {
                pool.Discard(null);
                throw;
            }
        }
        var reused = conn.Used;
        if (HttpUtilTelemetry.ConnectionUses.Enabled || HttpUtilTelemetry.IdleTimeBeforeReuse.Enabled)
            ClientTelemetry.GotConnection(uri, reused, lease.WasIdle, lease.IdleTime);
        try
        {
            if (trace?.GotConn is { } gotConn)
                Hooks.Fire(nameof(ClientTrace.GotConn), gotConn, new GotConnInfo(conn.Stream, reused, lease.WasIdle, lease.IdleTime));
        }
        catch
        {
            pool.Discard(conn);
            throw;
        }
        return (conn, reused);
    }

    /// <summary>After the body of the exchange running on <paramref name="conn"/> ended.</summary>
    private void Release(PooledConnection conn, bool clean)
    {
        var (pool, body, trace) = (conn.Pool, conn.Body!, conn.Trace);
        conn.Body = null;
        conn.Trace = null;
        Release(pool, conn, body, clean, trace);
    }

    /// <summary>After a body ended: back to the pool when the exchange ended cleanly, else closed.</summary>
    private void Release(HostPool pool, PooledConnection conn, BodyReadStream body, bool clean, ClientTrace? trace)
    {
        if (!clean && !body.IsFinished)
        {
            _ = DrainThenReleaseAsync(pool, conn, body, trace);
            return;
        }
        Exception? why = null;
        if (disposed) why = new ObjectDisposedException(nameof(Transport), "the transport was disposed");
        else if (!clean) why = new IOException("the response body failed before its end");
        else if (!conn.Client.Reusable) why = new IOException("the exchange ended the connection (Connection: close, HTTP/1.0, or an error)");
        why ??= pool.Put(conn);
        if (why is not null) pool.Discard(conn);
        try
        {
            if (trace?.PutIdleConn is { } put) Hooks.Fire(nameof(ClientTrace.PutIdleConn), put, new PutIdleConnInfo(why));
        }
        catch (ClientTraceException) when (why is null)
        {
            pool.TakeBack(conn); // a hook that throws leaves its connection closed (unless a waiter has it already)
            throw;
        }
    }

    private async Task DrainThenReleaseAsync(HostPool pool, PooledConnection conn, BodyReadStream body, ClientTrace? trace)
    {
        bool drained;
        try
        {
            using var limit = new CancellationTokenSource(ResponseDrainTimeout);
            drained = await body.DrainAsync(MaxResponseDrainBytes, limit.Token).ConfigureAwait(false);
        }
        catch (Exception)
        {
            drained = false;
        }
        if (drained)
        {
            Release(pool, conn, body, true, trace);
            return;
        }
        pool.Discard(conn);
        try
        {
            trace?.PutIdleConn?.Invoke(new PutIdleConnInfo(new IOException(
                $"the response body was disposed before its end and more than {MaxResponseDrainBytes} bytes were left (or they took longer than ResponseDrainTimeout)")));
        }
        catch (Exception)
        {
            // Nobody is left to receive it: the body was disposed.
        }
    }

    /// <summary>The core's retry rule, fed with what is known of the failed attempt.</summary>
    private static bool IsRetryable(Exception ex, bool reused, bool gotResponseBytes, HttpRequestMessage request) =>
        CoreAdapter.ShouldRetry(request, reused, CoreAdapter.IsConnectionLost(ex), gotResponseBytes);

    private static Exception Wrap(Exception ex) => ex switch
    {
        OperationCanceledException or ClientTraceException or ArgumentException or HttpRequestException => ex,
        IOException or ProtocolException or System.Net.Sockets.SocketException or ObjectDisposedException or TimeoutException =>
            new HttpRequestException($"the request failed: {ex.Message}", ex),
        _ => ex,
    };

    /// <summary>Closes every idle connection and refuses new requests; connections in use close when their
    /// bodies end.</summary>
    /// <param name="disposing">True from <see cref="IDisposable.Dispose"/>.</param>
    protected override void Dispose(bool disposing)
    {
        if (disposing && !disposed)
        {
            disposed = true;
            lock (sweeperGate) sweeper?.Dispose();
            Sweep(true);
        }
        base.Dispose(disposing);
    }
}
