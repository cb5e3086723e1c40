using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// Makes connections for a <see cref="Transport"/>: DNS (concurrent lookups of one host share one),
/// a TCP connect to each address in turn, a CONNECT tunnel through a proxy, TLS; each step reported
/// to the request's trace.
/// </summary>
internal sealed class Dialer(Transport options)
{
    private readonly object gate = new();
    private readonly Dictionary<string, Task<IPAddress[]>> lookups = new(StringComparer.OrdinalIgnoreCase);

    public async Task<PooledConnection> DialAsync(HostPool pool, PoolKey key, Uri? proxy, ClientTrace? trace, CancellationToken ct)
    {
        var route = CoreAdapter.Route(key.Scheme, proxy is not null);
        var (host, port) = route.ToProxy ? (proxy!.IdnHost, proxy.Port) : (key.Host, key.Port);
        var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await ResolveAsync(host, trace, ct).ConfigureAwait(false);
        var socket = await ConnectAsync(addresses, host, port, trace, ct).ConfigureAwait(false);
        Stream stream = new NetworkStream(socket, ownsSocket: true);
        try
        {
            if (route.Tunnel) stream = await TunnelAsync(stream, key, ct).ConfigureAwait(false);
            if (CoreAdapter.UsesTls(key.Scheme)) stream = await HandshakeAsync(stream, key.Host, trace, ct).ConfigureAwait(false);
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        var client = new ClientConn(stream, null, route.AbsoluteForm)
        {
            ParserSettings = options.ParserSettings,
            MaxDrainBytes = options.MaxResponseDrainBytes,
            ExpectContinueTimeout = options.ExpectContinueTimeout,
            BodyIdleTimeout = options.ResponseBodyIdleTimeout,
        };
        return new PooledConnection(options, pool, key, socket, stream, client)
        {
            Telemetry = ConnectionTelemetry.Open(key, socket.RemoteEndPoint is IPEndPoint remote ? remote.Address.ToString() : null),
        };
    }

    /// <summary>Resolves <paramref name="host"/>, joining a lookup already in flight for it.</summary>
    private async Task<IPAddress[]> ResolveAsync(string host, ClientTrace? trace, CancellationToken ct)
    {
        TaskCompletionSource<IPAddress[]>? mine = null;
        Task<IPAddress[]> lookup;
        bool coalesced;
        lock (gate)
        {
            coalesced = lookups.TryGetValue(host, out var running);
            if (coalesced)
            {
                lookup = running!;
            }
            else
            {
                mine = new TaskCompletionSource<IPAddress[]>(TaskCreationOptions.RunContinuationsAsynchronously);
                lookup = mine.Task;
                lookups[host] = lookup;
            }
        }
        try
        {
            Hooks.Fire(nameof(ClientTrace.DnsStart), trace?.DnsStart, new DnsStartInfo(host));
        }
        finally
        {
            // The lookup is shared: it runs even when this request's hook threw or it is cancelled.
            if (mine is not null) _ = LookUpAsync(host, mine);
        }
        IPAddress[] found;
        try
        {
            found = await lookup.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            Hooks.Fire(nameof(ClientTrace.DnsDone), trace?.DnsDone, new DnsDoneInfo([], ex, coalesced));
            throw new HttpRequestException($"DNS lookup of {host} failed: {ex.Message}", ex);
        }
        Hooks.Fire(nameof(ClientTrace.DnsDone), trace?.DnsDone, new DnsDoneInfo(found, null, coalesced));
        return found;
    }

    private async Task LookUpAsync(string host, TaskCompletionSource<IPAddress[]> result)
    {
        var since = ClientTelemetry.TimesDns ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
        try
        {
            var found = await Dns.GetHostAddressesAsync(host).ConfigureAwait(false);
            lock (gate) lookups.Remove(host);
            if (found.Length == 0)
            {
                var none = new SocketException((int)SocketError.HostNotFound);
                if (since != 0) ClientTelemetry.DnsLookup(host, since, none);
                result.TrySetException(none);
            }
            else
            {
                if (since != 0) ClientTelemetry.DnsLookup(host, since, null);
                result.TrySetResult(found);
            }
        }
        catch (Exception ex)
        {
            lock (gate) lookups.Remove(host);
            if (since != 0) ClientTelemetry.DnsLookup(host, since, ex);
            result.TrySetException(ex);
        }
    }

    /// <summary>Connects to each address in turn until one answers, within ConnectTimeout each.</summary>
    private async Task<Socket> ConnectAsync(IPAddress[] addresses, string host, int port, ClientTrace? trace, CancellationToken ct)
    {
        Exception? last = null;
        foreach (var address in addresses)
        {
            var endPoint = new IPEndPoint(address, port);
            var text = endPoint.ToString();
            if (trace?.ConnectStart is { } connectStart) Hooks.Fire(nameof(ClientTrace.ConnectStart), connectStart, new ConnectStartInfo("tcp", text));
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            Exception? error = null;
            try
            {
                await TimeLimit.RunAsync((socket, endPoint, text, limit: options.ConnectTimeout),
                    static async (s, token) =>
                    {
                        await s.socket.ConnectAsync(s.endPoint, token).ConfigureAwait(false);
                        return true;
                    },
                    options.ConnectTimeout,
                    static s => new TimeoutException($"connecting to {s.text} took longer than {s.limit.TotalSeconds:0.###} s (ConnectTimeout)"),
                    ct).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                error = ex;
            }
            if (error is null)
            {
                try
                {
                    if (trace?.ConnectDone is { } connected) Hooks.Fire(nameof(ClientTrace.ConnectDone), connected, new ConnectDoneInfo("tcp", text, null));
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
                return socket;
            }
            socket.Dispose();
            if (trace?.ConnectDone is { } failed) Hooks.Fire(nameof(ClientTrace.ConnectDone), failed, new ConnectDoneInfo("tcp", text, error));
            if (error is OperationCanceledException) throw error;
            last = error;
        }
        throw new HttpRequestException($"could not connect to {host}:{port}: {last?.Message}", last);
    }

    /// <summary>Opens a CONNECT tunnel to the target through the proxy; returns a stream through it.</summary>
    private async Task<Stream> TunnelAsync(Stream toProxy, PoolKey key, CancellationToken ct)
    {
        var conn = new ClientConn(toProxy) { ParserSettings = options.ParserSettings };
        var connect = new HttpRequestMessage(HttpMethod.Connect, new Uri($"http://{key.HostPort}/"));
        var response = await conn.DoAsync(connect, ct).ConfigureAwait(false);
        if (!CoreAdapter.ConnectSucceeded((int)response.StatusCode))
            throw new HttpRequestException($"the proxy refused CONNECT {key.HostPort}: {(int)response.StatusCode} {response.ReasonPhrase}");
        var taken = await conn.HijackAsync(ct).ConfigureAwait(false);
        return new TunnelStream(taken.Reader, taken.Stream);
    }

    private async Task<Stream> HandshakeAsync(Stream inner, string host, ClientTrace? trace, CancellationToken ct)
    {
        Hooks.Fire(nameof(ClientTrace.TlsHandshakeStart), trace?.TlsHandshakeStart);
        var ssl = new SslStream(inner, leaveInnerStreamOpen: false);
        var auth = new SslClientAuthenticationOptions
        {
            TargetHost = host,
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            RemoteCertificateValidationCallback = options.ServerCertificateValidation,
            ClientCertificates = options.ClientCertificates,
        };
        try
        {
            await TimeLimit.RunAsync((ssl, auth, host, limit: options.TlsHandshakeTimeout),
                static async (s, token) =>
                {
                    await s.ssl.AuthenticateAsClientAsync(s.auth, token).ConfigureAwait(false);
                    return true;
                },
                options.TlsHandshakeTimeout,
                static s => new TimeoutException($"the TLS handshake with {s.host} took longer than {s.limit?.TotalSeconds:0.###} s (TlsHandshakeTimeout)"),
                ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            Hooks.Fire(nameof(ClientTrace.TlsHandshakeDone), trace?.TlsHandshakeDone, new TlsHandshakeDoneInfo(null, ex));
            if (ex is OperationCanceledException && ct.IsCancellationRequested) throw;
            throw new HttpRequestException($"the TLS handshake with {host} failed: {ex.Message}", ex);
        }
        var state = new TlsConnectionState(ssl.SslProtocol, ssl.NegotiatedCipherSuite, ssl.NegotiatedApplicationProtocol.ToString(),
            ssl.RemoteCertificate);
        Hooks.Fire(nameof(ClientTrace.TlsHandshakeDone), trace?.TlsHandshakeDone, new TlsHandshakeDoneInfo(state, null));
        return ssl;
    }
}

/// <summary>A stream whose sending direction can end on its own (a half-close).</summary>
internal interface IWriteShutdown
{
    /// <summary>Ends the sending direction; reads go on.</summary>
    ValueTask ShutdownWriteAsync();
}

/// <summary>A stream that reads through a pipe reader (which may hold bytes already read) and writes
/// straight to the stream under it: a hijacked connection used as one stream again.</summary>
internal sealed class TunnelStream(PipeReader reader, Stream stream, Socket? socket = null) : Stream, IWriteShutdown
{
    /// <summary>Ends the sending direction (a TCP FIN) while reads go on; without a plain socket under the
    /// stream (TLS), nothing happens.</summary>
    public ValueTask ShutdownWriteAsync()
    {
        if (socket is not null && stream is NetworkStream)
        {
            try
            {
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Already closed: the other side sees the end either way.
            }
        }
        return ValueTask.CompletedTask;
    }

    private readonly Stream input = reader.AsStream();

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException("a tunnel has no length");
    public override long Position
    {
        get => throw new NotSupportedException("a tunnel cannot seek");
        set => throw new NotSupportedException("a tunnel cannot seek");
    }
    public override int Read(byte[] buffer, int offset, int count) => input.Read(buffer, offset, count);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => input.ReadAsync(buffer, cancellationToken);
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        input.ReadAsync(buffer, offset, count, cancellationToken);
    public override void Write(byte[] buffer, int offset, int count) => stream.Write(buffer, offset, count);
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => stream.WriteAsync(buffer, cancellationToken);
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        stream.WriteAsync(buffer, offset, count, cancellationToken);
    public override void Flush() => stream.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => stream.FlushAsync(cancellationToken);
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("a tunnel cannot seek");
    public override void SetLength(long value) => throw new NotSupportedException("a tunnel cannot seek");

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            input.Dispose();
            stream.Dispose();
        }
        base.Dispose(disposing);
    }
}
