using System.IO.Pipelines;
using HttpUtil.Core;
using Microsoft.FSharp.Core;

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
/// 101) are read past and listed by <see cref="WireMessage.GetInterimResponses"/>.</para>
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
        shell = new ConnectionShell(Role.ClientRole, stream, reader, nameof(ClientConn));
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

    /// <summary>Requests written whose responses have not been read yet.</summary>
    public int Pending => shell.Pending;

    /// <summary>
    /// Writes <paramref name="request"/>: its head, then its content (Content-Length when the content
    /// knows its length, chunked otherwise; HTTP/1.0 needs a known length). Host comes from
    /// <c>Headers.Host</c> or the URI.
    /// </summary>
    /// <param name="request">The request; its <c>RequestUri</c> is required.</param>
    /// <param name="cancellationToken">Cancels the wait for the turn or the write. A write cancelled part
    /// way breaks the write side.</param>
    /// <returns>A task that completes when the request has been handed to the stream.</returns>
    /// <exception cref="ArgumentException">The request cannot be put on the wire (no URI, a header value
    /// with CR or LF...); nothing was written and the connection is unchanged.</exception>
    /// <exception cref="PersistEofException">The connection has ended logically.</exception>
    /// <exception cref="ObjectDisposedException">After <see cref="Close"/> or <see cref="Hijack"/>.</exception>
    /// <exception cref="IOException">The stream failed, now or before.</exception>
    public async Task WriteAsync(HttpRequestMessage request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var (head, plan) = MessageMapping.ToRequestHead(request, proxy);
        var (slot, _) = await shell.TakeTurnAsync(ConnEvent.NewStartWriteRequest(Connection.requestCloses(head)), Phase.RequestPhase,
            FSharpValueOption<int>.ValueNone, cancellationToken).ConfigureAwait(false);
        await shell.WriteRequestAsync(slot, head, request.Content, plan, ClientTrace.FromRequest(request), ExpectContinueTimeout,
            cancellationToken).ConfigureAwait(false);
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
    /// <exception cref="ObjectDisposedException">After <see cref="Close"/> or <see cref="Hijack"/>.</exception>
    public async Task<HttpResponseMessage> ReadAsync(HttpRequestMessage request, CancellationToken cancellationToken = default) =>
        (await ReadCoreAsync(request, cancellationToken).ConfigureAwait(false)).Response;

    /// <summary>Reads a response and also returns its body stream (for <see cref="Transport"/>, which
    /// must know when the body ends).</summary>
    internal async Task<(HttpResponseMessage Response, BodyReadStream Body)> ReadCoreAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var known = shell.TakeSlot(request);
        var (slot, _) = await shell.TakeTurnAsync(ConnEvent.NewStartReadResponse(known), Phase.ResponsePhase, known, cancellationToken)
            .ConfigureAwait(false);
        await shell.DrainPreviousAsync(Phase.ResponsePhase, slot, cancellationToken).ConfigureAwait(false);
        var trace = ClientTrace.FromRequest(request);
        var seen = shell.TakeProgress(slot);
        Action? firstByte = seen is { FirstByteSeen: true } || trace?.GotFirstResponseByte is null
            ? null
            : () => Hooks.Fire(nameof(ClientTrace.GotFirstResponseByte), trace.GotFirstResponseByte);
        var method = request.Method.Method;
        var interim = seen?.Interim;
        Parsed<ResponseHead> parsed;
        while (true)
        {
            parsed = await shell.ReadHeadOrFailAsync(Phase.ResponsePhase, slot, Parser.parseResponseHead, firstByte, cancellationToken)
                .ConfigureAwait(false);
            firstByte = null;
            if (!Connection.isInterim(parsed.Head.Status)) break;
            (interim ??= []).Add(parsed.Head);
            try
            {
                if (parsed.Head.Status == 100) Hooks.Fire(nameof(ClientTrace.Got100Continue), trace?.Got100Continue);
                else if (Hooks.Ask(nameof(ClientTrace.Got1xxResponse), trace?.Got1xxResponse, parsed.Head.Status, parsed.Head.Headers) is { } abort)
                    throw abort;
            }
            catch (Exception ex)
            {
                throw shell.Fail(Phase.ResponsePhase, slot, ConnError.NewTransport(ex), ex);
            }
        }
        var framing = Framing.responseBody(method, parsed.Head);
        if (framing.IsError) throw shell.Fail(Phase.ResponsePhase, slot, ConnError.NewMalformed(framing.ErrorValue));
        var closes = Connection.responseClosesWith(parsed.Head, framing.ResultValue);
        HttpResponseMessage? response = null;
        var body = shell.NewBody(framing.ResultValue, false, trailers => CopyTrailers(response!, trailers), null);
        var wire = new WireInfo { Response = parsed.Head, Raw = parsed.Raw, IsLast = closes, Interim = interim ?? (IReadOnlyList<ResponseHead>)[] };
        response = MessageMapping.ToResponse(parsed.Head, wire, request, body);
        shell.Step(ConnEvent.NewHeadRead(slot, closes, false));
        return (response, body);
    }

    /// <summary>The core's view of the connection (for <see cref="Transport"/>'s reuse decision).</summary>
    internal ConnState State => shell.State;

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
        await WriteAsync(request, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(request, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes the connection over: returns the stream and the reader holding any input not consumed yet
    /// (for example the start of a tunnel after a 101 or a CONNECT). Operations still waiting for their
    /// turn, and every later call, throw <see cref="ObjectDisposedException"/>; operations already running
    /// are not stopped.
    /// </summary>
    /// <remarks>Bytes already written are sent first: the call blocks until they are (at most 5 seconds,
    /// for a peer that does not read).</remarks>
    /// <returns>The stream and its reader, now owned by the caller.</returns>
    /// <exception cref="ObjectDisposedException">The connection was already closed or hijacked.</exception>
    public HijackedConnection Hijack() => shell.Hijack();

    /// <summary>Closes the connection: sends what was already written (waiting at most a second for a peer
    /// that does not read), then disposes the stream. Waiting operations, and every later call,
    /// throw <see cref="ObjectDisposedException"/>. Calling it again (or after <see cref="Hijack"/>) does nothing.</summary>
    public void Close() => shell.Close();

    /// <summary>Same as <see cref="Close"/>.</summary>
    public void Dispose() => shell.Close();

    /// <summary>Same as <see cref="Close"/>, disposing the stream asynchronously.</summary>
    /// <returns>A task that completes when the stream is disposed.</returns>
    public ValueTask DisposeAsync() => shell.CloseAsync();
}
