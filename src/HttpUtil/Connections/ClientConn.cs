using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// The client end of one HTTP/1.x connection over any duplex <see cref="Stream"/> (Go's
/// <c>httputil.ClientConn</c>): write requests, read their responses in the same order, keep the
/// connection alive between exchanges, and pipeline (write several requests before reading).
/// </summary>
/// <remarks>
/// <para>Order: writes run one at a time in call order; each <see cref="ReadAsync"/> waits until the
/// responses of all earlier requests have been read, whatever order the reads are called in. Reads may
/// run concurrently with writes.</para>
/// <para>Persist-EOF: a request that says <c>Connection: close</c> (or is HTTP/1.0 without keep-alive)
/// is the last one written: later writes throw <see cref="PersistEofException"/>. A response that ends
/// the connection is returned normally and marked (<see cref="WireMessage.IsLastOnConnection(HttpResponseMessage)"/>);
/// later reads and writes throw <see cref="PersistEofException"/>.</para>
/// <para>Errors stick: after a read fails (bad bytes, end of input, I/O failure, cancellation part way),
/// every later read and write rethrows it; after a write fails, every later write does.</para>
/// <para>Bodies stream: a response's content reads from the connection as it is read. The next read
/// first reads and drops what is left of it, up to <see cref="MaxDrainBytes"/>; beyond that the
/// connection is closed and <see cref="DrainLimitException"/> thrown. Interim 1xx responses (except
/// 101) are read past and listed by <see cref="WireMessage.GetInterimResponses"/>; more than
/// <c>Limits.MaxInterimResponses</c> of them, or more bytes of them than <c>Limits.MaxHeadBytes</c>, fail the
/// read with <see cref="MalformedMessageException"/> (<c>TooManyInterimResponses</c>).</para>
/// <para>Writes complete when the bytes are in the connection's output buffer, not on the wire: a send loop
/// puts them there. If sending fails, the writing side breaks and later writes throw an
/// <see cref="IOException"/> that says the connection broke earlier. <see cref="CloseAsync"/> and
/// <see cref="HijackAsync"/> send what was written before they let go of the stream.</para>
/// </remarks>
public sealed class ClientConn : IAsyncDisposable, IDisposable
{
    private readonly ConnectionShell shell;
    private readonly bool proxy;

    /// <summary>
    /// A client connection over <paramref name="stream"/>, writing origin-form targets (Go's
    /// <c>NewClientConn</c>). The connection owns the stream from now on: <see cref="Close"/> disposes it.
    /// </summary>
    /// <param name="stream">A connected duplex stream (a <see cref="System.Net.Sockets.NetworkStream"/>, an
    /// <see cref="System.Net.Security.SslStream"/>, a pipe...).</param>
    /// <param name="reader">A reader over <paramref name="stream"/> that may already hold bytes read from it
    /// (Go's bufio.Reader); null to create one.</param>
    public ClientConn(Stream stream, PipeReader? reader = null) : this(stream, reader, false) { }

    internal ClientConn(Stream stream, PipeReader? reader, bool proxy)
    {
        shell = new ConnectionShell(true, stream, reader, nameof(ClientConn));
        this.proxy = proxy;
    }

    /// <summary>
    /// A client connection to a forward proxy: it writes absolute-form request targets
    /// (<c>GET http://host/path HTTP/1.1</c>), as Go's <c>NewProxyClientConn</c> does.
    /// </summary>
    /// <param name="stream">A connected duplex stream to the proxy.</param>
    /// <param name="reader">A reader over <paramref name="stream"/> that may hold bytes already; null to create one.</param>
    /// <returns>The connection.</returns>
    public static ClientConn ForProxy(Stream stream, PipeReader? reader = null) => new(stream, reader, true);

    /// <summary>The limits and leniences used to read responses. Default: <see cref="ParserSettings.Default"/>.</summary>
    public ParserSettings ParserSettings
    {
        get => shell.Settings;
        init => shell.Settings = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>Most bytes of an unread response body the next read drops to reach the next response
    /// (default 256 KiB). Beyond it the connection is closed.</summary>
    public long MaxDrainBytes
    {
        get => shell.MaxDrainBytes;
        init => shell.MaxDrainBytes = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    /// <summary>
    /// How long a request that says <c>Expect: 100-continue</c> waits for the server's answer before its
    /// body is sent anyway. Null (the default, as Go's ClientConn) sends the body at once. The wait happens
    /// only when the request's response is the next to be read.
    /// </summary>
    public TimeSpan? ExpectContinueTimeout { get; init; }

    /// <summary>How long a read of a response body may wait for its next byte; null (the default, as in Go) for no limit
    /// beyond the caller's token. Past it (checked four times a second, so within a quarter of a second after it) the
    /// connection is closed and the read throws <see cref="IOException"/> around a <see cref="TimeoutException"/> naming
    /// this setting: an upstream that stops part way through a body cannot hold the reader forever. Only time spent
    /// waiting on a read counts. A read costs no timer: one heartbeat checks every connection.</summary>
    public TimeSpan? BodyIdleTimeout
    {
        get => shell.BodyIdleTimeout;
        init => shell.BodyIdleTimeout = value;
    }

    /// <summary>How long one send may wait for the peer to take its bytes (default 30 s; null for no limit). A send carries
    /// what was written since the last one went out (up to 256 KiB), so a server that reads a large upload slower than
    /// about 9 KB/s fails it too; raise it for slow links. A server that
    /// stops reading cannot hold a write and its buffers forever: past it the connection is closed and the write (and
    /// every later one) fails with <see cref="IOException"/> naming this setting.</summary>
    public TimeSpan? SendTimeout
    {
        get => shell.SendTimeout;
        init => shell.SendTimeout = value;
    }

    /// <summary>How long <see cref="CloseAsync"/>, <see cref="Close"/> and <see cref="HijackAsync"/> wait for bytes
    /// already written to be sent to a peer that does not read (default 5 s). Past it the connection is closed
    /// and <see cref="CloseAsync"/> and <see cref="HijackAsync"/> throw <see cref="IOException"/>.</summary>
    public TimeSpan FlushTimeout
    {
        get => shell.FlushTimeout;
        init => shell.FlushTimeout = value >= TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    /// <summary>Requests written whose responses have not been read yet.</summary>
    public int Pending => shell.Gate.Pending;

    /// <summary>
    /// Writes <paramref name="request"/>: its head, then its content (Content-Length when the content
    /// knows its length, chunked otherwise; HTTP/1.0 needs a known length). Host comes from
    /// <c>Headers.Host</c> or the URI; an HTTP/1.1 request with a relative URI needs <c>Headers.Host</c>
    /// (RFC 9112 section 3.2).
    /// </summary>
    /// <param name="request">The request; its <c>RequestUri</c> is required.</param>
    /// <param name="cancellationToken">Cancels the wait for the turn or the write. A write cancelled part
    /// way breaks the write side.</param>
    /// <returns>A task that completes when the request is in the connection's output buffer (not yet
    /// necessarily on the wire).</returns>
    /// <exception cref="ArgumentException">The request cannot be put on the wire (no URI, no Host for HTTP/1.1,
    /// a header value with CR or LF...); nothing was written and the connection is unchanged.</exception>
    /// <exception cref="PersistEofException">The connection has ended logically.</exception>
    /// <exception cref="ObjectDisposedException">After <see cref="Close"/> or <see cref="HijackAsync"/>.</exception>
    /// <exception cref="IOException">The stream failed, now or before.</exception>
    public Task WriteAsync(HttpRequestMessage request, CancellationToken cancellationToken = default) =>
        WriteCoreAsync(request, cancellationToken).AsTask();

    /// <summary><see cref="WriteAsync"/> as a pooled <see cref="ValueTask"/> (for <see cref="Transport"/>: no task per request).</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    internal async ValueTask WriteCoreAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var outgoing = CoreAdapter.PrepareRequest(request, proxy);
        var (slot, _) = await shell.Gate.TakeTurnAsync(static (m, closes) => m.StartWriteRequest(closes), outgoing.Closes,
            ExchangePhase.Request, null, cancellationToken).ConfigureAwait(false);
        TimeSpan? wait = ExpectContinueTimeout is { } t && outgoing.ExpectsContinue && shell.Gate.MayAwaitContinue(slot) && shell.PreviousBodyFinished
            ? t
            : null;
        var tally = wait is null ? null : shell.NewTally(slot);
        await shell.Messages.WriteRequestAsync(slot, outgoing, request.Content, WireMessage.TrailersOf(request), ClientTrace.FromRequest(request), wait,
                tally, cancellationToken)
            .ConfigureAwait(false);
        shell.RememberSlot(request, slot);
    }

    /// <summary>
    /// Reads the response to <paramref name="request"/>, which must have been written on this connection
    /// and not read yet. Waits until the responses of earlier requests have been read. The content
    /// streams from the connection; chunked trailers land in <c>TrailingHeaders</c> once it has been read.
    /// </summary>
    /// <param name="request">A request written by <see cref="WriteAsync"/>.</param>
    /// <param name="cancellationToken">Cancels the wait or the read; a read cancelled part way breaks the read side.</param>
    /// <returns>The response. When it ends the connection, <see cref="WireMessage.IsLastOnConnection(HttpResponseMessage)"/>
    /// is true and the next call throws <see cref="PersistEofException"/>.</returns>
    /// <exception cref="PipelineException">The request was not written here, or was already read.</exception>
    /// <exception cref="MalformedMessageException">The response breaks HTTP/1.x, or ended part way.</exception>
    /// <exception cref="EndOfStreamException">The server closed the connection before the response began.</exception>
    /// <exception cref="PersistEofException">An earlier response ended the connection.</exception>
    /// <exception cref="ObjectDisposedException">After <see cref="Close"/> or <see cref="HijackAsync"/>.</exception>
    public async Task<HttpResponseMessage> ReadAsync(HttpRequestMessage request, CancellationToken cancellationToken = default) =>
        (await ReadCoreAsync(request, cancellationToken).ConfigureAwait(false)).Response;

    /// <summary>Reads a response and also returns its body stream (for <see cref="Transport"/>, which
    /// must know when the body ends).</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    internal async ValueTask<(HttpResponseMessage Response, BodyReadStream Body)> ReadCoreAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var known = shell.TakeSlot(request);
        var (slot, _) = await shell.Gate.TakeTurnAsync(static (m, s) => m.StartReadResponse(s), known, ExchangePhase.Response, known,
            cancellationToken).ConfigureAwait(false);
        await shell.DrainPreviousAsync(ExchangePhase.Response, slot, cancellationToken).ConfigureAwait(false);
        var trace = ClientTrace.FromRequest(request);
        var tally = shell.TakeTally(slot);
        var sawFirstByte = tally?.FirstByteSeen == true;
        Action? firstByte = sawFirstByte || trace?.GotFirstResponseByte is null
            ? null
            : () => Hooks.Fire(nameof(ClientTrace.GotFirstResponseByte), trace.GotFirstResponseByte);
        if (!sawFirstByte) shell.Heads.ResetProgress();
        var method = request.Method.Method;
        Parsed<ResponseHead> parsed;
        IncomingResponse incoming;
        while (true)
        {
            if (tally?.Error is { } tooMany) throw Malformed(slot, tooMany);
            parsed = await shell.Heads.ReadAsync(ExchangePhase.Response, slot, CoreAdapter.ParseResponseHead, firstByte, cancellationToken)
                .ConfigureAwait(false);
            firstByte = null;
            incoming = CoreAdapter.ReadResponse(method, parsed.Head, out var error) ?? throw Malformed(slot, error!);
            if (!CoreAdapter.IsInterim(incoming)) break;
            if ((tally ??= new InterimTally()).Add(shell.Settings, parsed.Head, parsed.Length) is { } limit) throw Malformed(slot, limit);
            try
            {
                if (CoreAdapter.IsContinue(parsed.Head)) Hooks.Fire(nameof(ClientTrace.Got100Continue), trace?.Got100Continue);
                else Hooks.Fire(nameof(ClientTrace.Got1xxResponse), trace?.Got1xxResponse, new Got1xxResponseInfo(parsed.Head.Status, parsed.Head.Headers));
            }
            catch (Exception ex)
            {
                shell.Gate.Step(static (m, a) => m.Failed(ExchangePhase.Response, a.slot, a.ex), (slot, ex));
                throw;
            }
        }
        var body = shell.NewBody(incoming.Body, false, static (r, trailers) => CopyTrailers((HttpResponseMessage)r!, trailers), null, null);
        var wire = new WireInfo
        {
            ResponseParsed = parsed, IsLast = incoming.Closes, Interim = tally?.Heads ?? (IReadOnlyList<ResponseHead>)[],
            Switching = CoreAdapter.IsSwitching(incoming),
        };
        var response = MessageMapping.ToResponse(parsed.Head, wire, request, body);
        body.TrailersState = response;
        shell.Gate.Step(static (m, a) => m.HeadRead(a.slot, a.closes, false), (slot, closes: incoming.Closes));
        return (response, body);
    }

    private MalformedMessageException Malformed(int slot, HttpError error)
    {
        shell.Gate.Step(static (m, a) => m.Malformed(ExchangePhase.Response, a.slot, a.error), (slot, error));
        return new MalformedMessageException(error);
    }

    /// <summary>True when the connection may carry another exchange now (for <see cref="Transport"/>'s reuse decision).</summary>
    internal bool Reusable => shell.Gate.Reusable;

    /// <summary>True when the last response read (or attempt) saw at least one byte (for the retry rule).</summary>
    internal bool SawResponseBytes => shell.Heads.SawBytes;

    private static void CopyTrailers(HttpResponseMessage response, Headers trailers)
    {
        foreach (var f in trailers.AsSpan()) response.TrailingHeaders.TryAddWithoutValidation(f.Name, f.Value);
    }

    /// <summary>Writes <paramref name="request"/> and reads its response (Go's <c>Do</c>).</summary>
    /// <param name="request">The request; its <c>RequestUri</c> is required.</param>
    /// <param name="cancellationToken">Cancels the exchange.</param>
    /// <returns>The response, as <see cref="ReadAsync"/> returns it.</returns>
    public async Task<HttpResponseMessage> DoAsync(HttpRequestMessage request, CancellationToken cancellationToken = default)
    {
        await WriteCoreAsync(request, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(request, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes the connection over (Go's <c>Hijack</c>): once the bytes already written have been sent, returns
    /// the stream and the reader holding any input not consumed yet (for example the start of a tunnel after a
    /// 101 or a CONNECT). Operations still waiting for their turn, and every later call, throw
    /// <see cref="ObjectDisposedException"/>; operations already running are not stopped.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait for the written bytes to go out.</param>
    /// <returns>The stream and its reader, now owned by the caller.</returns>
    /// <exception cref="ObjectDisposedException">The connection was already closed or hijacked.</exception>
    /// <exception cref="IOException">Bytes already written could not be sent within <see cref="FlushTimeout"/>
    /// (or sending failed): the connection was closed instead.</exception>
    public ValueTask<HijackedConnection> HijackAsync(CancellationToken cancellationToken = default) => shell.HijackAsync(cancellationToken);

    /// <summary>Starts closing the connection and returns at once: waiting operations, and every later call,
    /// throw <see cref="ObjectDisposedException"/>; bytes already written are sent (at most
    /// <see cref="FlushTimeout"/>), then the stream is disposed. Calling it again (or after
    /// <see cref="HijackAsync"/>) does nothing. Use <see cref="CloseAsync"/> to wait and to learn whether
    /// everything written was sent.</summary>
    public void Close() => shell.Close();

    /// <summary>Closes as <see cref="Close"/> does and waits until the stream is disposed.</summary>
    /// <param name="cancellationToken">Stops waiting (the close goes on).</param>
    /// <returns>A task that completes when the stream is disposed.</returns>
    /// <exception cref="IOException">Bytes already written could not be sent within <see cref="FlushTimeout"/>,
    /// or sending failed; the stream was disposed all the same.</exception>
    public Task CloseAsync(CancellationToken cancellationToken = default) => shell.CloseAsync(false, cancellationToken).AsTask();

    /// <summary>Same as <see cref="Close"/>.</summary>
    public void Dispose() => shell.Close();

    /// <summary>Same as <see cref="CloseAsync"/>, except that it does not throw when written bytes could not be sent.</summary>
    /// <returns>A task that completes when the stream is disposed.</returns>
    public ValueTask DisposeAsync() => shell.CloseAsync(true, CancellationToken.None);
}
