using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// The server end of one HTTP/1.x connection over any duplex <see cref="Stream"/> (Go's
/// <c>httputil.ServerConn</c>): read requests, answer them, keep the connection alive.
/// </summary>
/// <remarks>
/// <para>Order: <see cref="ReadAsync"/> may read ahead (pipelined requests); responses go out strictly in
/// request order, whatever order <see cref="WriteAsync"/> is called in: a response waits until the
/// responses to all earlier requests have been written.</para>
/// <para>Persist-EOF: a request that ends the connection (<c>Connection: close</c>, HTTP/1.0 without
/// keep-alive) is returned normally and marked (<see cref="WireMessage.IsLastOnConnection(HttpRequestMessage)"/>);
/// its response says <c>Connection: close</c>; the next read throws <see cref="PersistEofException"/>.
/// A response that says <c>Connection: close</c> (or must be delimited by closing) ends it as well.</para>
/// <para>End of input: when the client closes the connection cleanly where a new request would start,
/// <see cref="ReadAsync"/> throws <see cref="EndOfStreamException"/> (Go's io.EOF); when it closes in the
/// middle of a request head it throws <see cref="PersistEofException"/>.</para>
/// <para>Bodies stream: a request's content reads from the connection as it is read; the next read first
/// drops what is left of it, up to <see cref="MaxDrainBytes"/>. A request with <c>Expect: 100-continue</c>
/// gets <c>100 Continue</c> when its content is first read, if all earlier responses are out; when its
/// response is written without that, the response ends the connection.</para>
/// </remarks>
public sealed class ServerConn : IAsyncDisposable, IDisposable
{
    private readonly ConnectionShell shell;

    /// <summary>A server connection over <paramref name="stream"/> (Go's <c>NewServerConn</c>). The
    /// connection owns the stream from now on: <see cref="Close"/> disposes it.</summary>
    /// <param name="stream">An accepted duplex stream.</param>
    /// <param name="reader">A reader over <paramref name="stream"/> that may already hold bytes read from it;
    /// null to create one.</param>
    public ServerConn(Stream stream, PipeReader? reader = null)
    {
        shell = new ConnectionShell(false, stream, reader, nameof(ServerConn)) {
            BodyIdleTimeout = TimeSpan.FromSeconds(30),
            MinRequestBodyDataRate = MinDataRate.KestrelDefault,
            MinSendDataRate = MinDataRate.KestrelDefault,
        };
    }

    /// <summary>The limits and leniences used to read requests. Default: <see cref="ParserSettings.Default"/>.</summary>
    public ParserSettings ParserSettings
    {
        get => shell.Settings;
        init => shell.Settings = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>Most bytes of an unread request body the next read drops to reach the next request
    /// (default 256 KiB). Beyond it the connection is closed.</summary>
    public long MaxDrainBytes
    {
        get => shell.MaxDrainBytes;
        init => shell.MaxDrainBytes = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    /// <summary>How long one send may wait for the client to take its bytes (default 30 s; null for no limit). A send
    /// carries what was written since the last one went out (up to 256 KiB); a large one may take longer, as
    /// <see cref="MinResponseDataRate"/> allows. A client that stops reading cannot hold a write and its buffers forever:
    /// past it the connection is closed and the write (and every later one) fails with <see cref="IOException"/> naming
    /// this setting.</summary>
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

    /// <summary>How long <see cref="ReadAsync"/> waits for a complete request head, from its start (so the idle time
    /// of a keep-alive connection counts), like Kestrel's request-headers timeout; default 30 s, null for none.
    /// Past it the read throws <see cref="RequestTimeoutException"/> (a 408 hint) and the read side is broken: a
    /// slowloris client that sends a head a byte at a time is cut off.</summary>
    public TimeSpan? HeadTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a read of a request body may wait for its next byte; default 30 s, null for none. Past it the
    /// read throws <see cref="RequestTimeoutException"/> (kind <see cref="ErrorKind.BodyTimeout"/>, a 408 hint) and the
    /// read side is broken: a client that sends a body slowly or stops part way cannot hold the connection and its
    /// handler forever. It counts only while the application waits on a read (time spent processing between reads
    /// does not), as Kestrel's minimum data rate does not count time the application is not reading.</summary>
    public TimeSpan? BodyIdleTimeout
    {
        get => shell.BodyIdleTimeout;
        init => shell.BodyIdleTimeout = value;
    }

    /// <summary>The slowest a request body may arrive, averaged over the time the application waits on reads of it, like
    /// Kestrel's <c>MinRequestBodyDataRate</c>; default 240 bytes/s after a 5 s grace period, null for none. Past it a
    /// read throws <see cref="RequestTimeoutException"/> (kind <see cref="ErrorKind.BodyTooSlow"/>, a 408 hint) and the
    /// read side is broken: a client that trickles a body just fast enough to beat <see cref="BodyIdleTimeout"/> is cut
    /// off too. Time the application spends between reads does not count against the client.</summary>
    public MinDataRate? MinRequestBodyDataRate
    {
        get => shell.MinRequestBodyDataRate;
        init => shell.MinRequestBodyDataRate = value;
    }

    /// <summary>The slowest the client may take responses, like Kestrel's <c>MinResponseDataRate</c>; default 240 bytes/s
    /// with a 5 s grace period, null for none. A send of n bytes may take max(<see cref="SendTimeout"/>, grace period +
    /// n / rate): a client on a slow but steady link gets a large response whole, and one that reads slower than the
    /// rate (or takes a byte now and then to dodge <see cref="SendTimeout"/>) has its connection closed, the write
    /// failing with <see cref="IOException"/>.</summary>
    public MinDataRate? MinResponseDataRate
    {
        get => shell.MinSendDataRate;
        init => shell.MinSendDataRate = value;
    }

    /// <summary>Requests read that have not been answered yet.</summary>
    public int Pending => shell.Gate.Pending;

    /// <summary>
    /// Reads the next request. <c>RequestUri</c> is absolute (scheme from the stream: https over an
    /// <see cref="System.Net.Security.SslStream"/>, http otherwise; host from the target or Host) where
    /// System.Uri accepts it, else relative, else null; the raw target is always in
    /// <see cref="WireMessage.GetWireHead(HttpRequestMessage)"/>. Content headers are in <c>Content.Headers</c>;
    /// <c>Content</c> is null for a request without body or content headers.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait or the read; a read cancelled part way breaks the read side.</param>
    /// <returns>The request.</returns>
    /// <exception cref="EndOfStreamException">The client closed the connection cleanly before a new request.</exception>
    /// <exception cref="PersistEofException">The connection has ended logically, or the client closed it in
    /// the middle of a request head.</exception>
    /// <exception cref="MalformedMessageException">The request breaks HTTP/1.x or a limit (the kind says
    /// which, and <c>Error.StatusHint</c> the status to answer with: 400, 413, 414, 431, 501 or 505; then close).</exception>
    /// <exception cref="ObjectDisposedException">After <see cref="Close"/> or <see cref="HijackAsync"/>.</exception>
    /// <exception cref="RequestTimeoutException">No complete head within <see cref="HeadTimeout"/>.</exception>
    public async Task<HttpRequestMessage> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (HeadTimeout is not { } limit) return await ReadCoreAsync(cancellationToken).ConfigureAwait(false);
        // The connection's deadline source is reused from read to read (a read running beside it gets its own).
        var deadline = (headDeadlines ??= new DeadlinePool(1)).Start(cancellationToken, limit);
        try
        {
            return await ReadCoreAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RequestTimeoutException(limit);
        }
        finally
        {
            headDeadlines.Finish(deadline);
        }
    }

    private DeadlinePool? headDeadlines;

    private async Task<HttpRequestMessage> ReadCoreAsync(CancellationToken cancellationToken)
    {
        var (slot, _) = await shell.Gate.TakeTurnAsync(static (m, _) => m.StartReadRequest(), 0, ExchangePhase.Request, null,
            cancellationToken).ConfigureAwait(false);
        await shell.DrainPreviousAsync(ExchangePhase.Request, slot, cancellationToken).ConfigureAwait(false);
        var parsed = await shell.Heads.ReadAsync(ExchangePhase.Request, slot, CoreAdapter.ParseRequestHead, null, cancellationToken)
            .ConfigureAwait(false);
        var head = parsed.Head;
        if (CoreAdapter.ReadRequest(head, shell.Settings, out var error) is not { } incoming)
        {
            shell.Gate.Step(static (m, a) => m.Malformed(ExchangePhase.Request, a.slot, a.error!), (slot, error));
            throw new MalformedMessageException(error!);
        }
        var info = new WireInfo { RequestParsed = parsed, IsLast = incoming.Closes };
        var body = shell.NewBody(incoming.Body, true, static (i, trailers) => ((WireInfo)i!).Trailers = trailers, info,
            incoming.ExpectsContinue ? ct => shell.Messages.WriteContinueAsync(slot, ct) : null);
        var request = MessageMapping.ToRequest(head, info, shell.Stream, CoreAdapter.HasBody(incoming.Body) ? body : null);
        shell.RememberSlot(request, slot);
        shell.Gate.Step(static (m, a) => m.HeadRead(a.slot, a.closes, a.expects), (slot, closes: incoming.Closes, expects: incoming.ExpectsContinue));
        return request;
    }

    /// <summary>
    /// Writes <paramref name="response"/> as the answer to <paramref name="request"/>, after the answers
    /// to every earlier request. The body is framed by Content-Length when the content knows its length,
    /// chunked when it does not and both sides speak HTTP/1.1 (then <c>TrailingHeaders</c> are sent as
    /// trailers), and by closing the connection otherwise. HEAD, 1xx, 204 and 304 responses get no body.
    /// </summary>
    /// <param name="request">A request returned by <see cref="ReadAsync"/> and not answered yet.</param>
    /// <param name="response">The response.</param>
    /// <param name="cancellationToken">Cancels the wait or the write; a write cancelled part way breaks the write side.</param>
    /// <returns>A task that completes when the response is in the connection's output buffer (not yet necessarily
    /// on the wire; <see cref="CloseAsync"/> waits until it is).</returns>
    /// <exception cref="ArgumentException">The response cannot be put on the wire; nothing changed, and
    /// the request can still be answered.</exception>
    /// <exception cref="PipelineException">The request was not read here, or was already answered.</exception>
    /// <exception cref="ConnectionClosedException">After <see cref="Close"/> or <see cref="HijackAsync"/> (Go's ErrClosed).</exception>
    /// <exception cref="IOException">The stream failed, now or before.</exception>
    public async Task WriteAsync(HttpRequestMessage request, HttpResponseMessage response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(response);
        var outgoing = CoreAdapter.PrepareResponse(request, response);
        var known = shell.TakeSlot(request);
        var (slot, ends) = await shell.Gate.TakeTurnAsync(static (m, a) => m.StartWriteResponse(a.known, a.closes), (known, closes: outgoing.Closes),
            ExchangePhase.Response, known, cancellationToken).ConfigureAwait(false);
        var head = ends ? CoreAdapter.MarkLast(outgoing.Head) : outgoing.Head;
        await shell.Messages.WriteResponseAsync(slot, head, outgoing.Body, response.Content, () => CoreAdapter.ToFields(response.TrailingHeaders),
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes the connection over (Go's <c>Hijack</c>): once the bytes already written have been sent, returns
    /// the stream and the reader holding any input not consumed yet (pipelined requests, tunnel data).
    /// Operations waiting for their turn, and every later call, fail: <see cref="WriteAsync"/> with
    /// <see cref="ConnectionClosedException"/>, the rest with <see cref="ObjectDisposedException"/> (Go's
    /// asymmetry). Running operations are not stopped.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait for the written bytes to go out.</param>
    /// <returns>The stream and its reader, now owned by the caller.</returns>
    /// <exception cref="ObjectDisposedException">The connection was already closed or hijacked.</exception>
    /// <exception cref="IOException">Bytes already written could not be sent within <see cref="FlushTimeout"/>
    /// (or sending failed): the connection was closed instead.</exception>
    public ValueTask<HijackedConnection> HijackAsync(CancellationToken cancellationToken = default) => shell.HijackAsync(cancellationToken);

    /// <summary>Starts closing the connection and returns at once: later calls fail as after
    /// <see cref="HijackAsync"/>; responses already written are sent (at most <see cref="FlushTimeout"/>), then
    /// the stream is disposed. Calling it again (or after <see cref="HijackAsync"/>) does nothing. Use
    /// <see cref="CloseAsync"/> to wait and to learn whether everything written was sent.</summary>
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
