using System.IO.Pipelines;
using System.Text;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// Go's <c>DumpRequest</c>, <c>DumpRequestOut</c> and <c>DumpResponse</c>: a message as HTTP/1.1 bytes, for
/// debugging. Heads come from the core's serializer, so a dump shows exactly what <see cref="ClientConn"/>,
/// <see cref="ServerConn"/> and <see cref="Transport"/> write; a message they read off the wire is shown with
/// its head as it was read. With <c>body</c> set the body follows, framed as on the wire (a chunked body as
/// chunks, then its trailers), and the message's content is left buffered so that it can still be read or sent
/// afterwards. Without it only the head is returned and the content is not touched.
/// </summary>
public static class HttpDump
{
    /// <summary>
    /// An incoming request as a server received it (Go's <c>DumpRequest</c>). A request read by
    /// <see cref="ServerConn"/> shows its head exactly as read (field order, casing, raw target); any other shows
    /// the head a client would write for it in origin form.
    /// </summary>
    /// <param name="request">The request. With <paramref name="body"/> its content is buffered and stays readable.</param>
    /// <param name="body">Also dump the body, framed as it was received (or would be sent).</param>
    /// <param name="ct">Cancels reading the body.</param>
    /// <returns>The bytes. A body that fails to read throws as reading it would (for example
    /// <see cref="MalformedMessageException"/>).</returns>
    /// <exception cref="ArgumentException">The request cannot be put on the wire (no URI, a bad field).</exception>
    public static async Task<byte[]> DumpRequestAsync(HttpRequestMessage request, bool body, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.GetWireHead() is { } wire)
        {
            var raw = Encoding.Latin1.GetBytes(request.GetRawHead()!);
            return body ? await AppendBodyAsync(raw, request.Content, CoreAdapter.RequestFraming(wire), () => request.GetTrailers() ?? Headers.Empty, ct)
                .ConfigureAwait(false) : raw;
        }
        return await DumpRequestOutAsync(request, body, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// An outgoing request as a client sends it (Go's <c>DumpRequestOut</c>): Host first, the request-target in
    /// origin form, and the framing fields the connection adds (<c>Content-Length</c>, or
    /// <c>Transfer-Encoding: chunked</c> for content of unknown length). Request trailers set with
    /// <see cref="WireMessage.WithTrailers"/> follow a chunked body.
    /// </summary>
    /// <param name="request">The request. With <paramref name="body"/> its content is buffered (so it stays
    /// sendable; its length is then known, so a later send frames it with <c>Content-Length</c>).</param>
    /// <param name="body">Also dump the body as it would go on the wire.</param>
    /// <param name="ct">Cancels reading the content.</param>
    /// <returns>The bytes.</returns>
    /// <exception cref="ArgumentException">The request cannot be put on the wire (no URI, a bad field).</exception>
    public static async Task<byte[]> DumpRequestOutAsync(HttpRequestMessage request, bool body, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        // The head first: buffering the content afterwards must not change the framing it shows.
        var outgoing = CoreAdapter.PrepareRequest(request, absoluteForm: false);
        var head = CoreAdapter.HeadBytes(outgoing.Head);
        if (!body) return head;
        var trailers = WireMessage.TrailersOf(request);
        return await AppendBodyAsync(head, request.Content, outgoing.Body, () => trailers?.Invoke() ?? Headers.Empty, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// A response (Go's <c>DumpResponse</c>). A response read by <see cref="ClientConn"/> or <see cref="Transport"/>
    /// shows its head exactly as read; any other shows the head <see cref="ServerConn"/> would write for it.
    /// </summary>
    /// <param name="response">The response. With <paramref name="body"/> its content is buffered and stays readable.</param>
    /// <param name="body">Also dump the body, framed as received (a chunked body as chunks with its trailers).</param>
    /// <param name="ct">Cancels reading the body.</param>
    /// <returns>The bytes. A body that fails to read throws as reading it would.</returns>
    /// <exception cref="ArgumentException">The response cannot be put on the wire (a bad field or status).</exception>
    public static async Task<byte[]> DumpResponseAsync(HttpResponseMessage response, bool body, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(response);
        var request = response.RequestMessage ?? new HttpRequestMessage(HttpMethod.Get, (Uri?)null);
        byte[] head;
        Framing.BodyLength framing;
        if (response.GetWireHead() is { } wire)
        {
            head = Encoding.Latin1.GetBytes(response.GetRawHead()!);
            framing = CoreAdapter.ResponseFraming(request.Method.Method, wire);
        }
        else
        {
            var outgoing = CoreAdapter.PrepareResponse(request, response);
            head = CoreAdapter.HeadBytes(outgoing.Head);
            framing = outgoing.Body;
        }
        if (!body) return head;
        return await AppendBodyAsync(head, response.Content, framing, () => CoreAdapter.ToFields(response.TrailingHeaders), ct).ConfigureAwait(false);
    }

    /// <summary><paramref name="head"/> followed by <paramref name="content"/> framed as <paramref name="framing"/>;
    /// the content is buffered first so that it stays readable.</summary>
    private static async Task<byte[]> AppendBodyAsync(byte[] head, HttpContent? content, Framing.BodyLength framing, Func<Headers> trailers,
        CancellationToken ct)
    {
        if (content is null || !CoreAdapter.SendsBody(framing)) return head;
        await content.LoadIntoBufferAsync(ct).ConfigureAwait(false);
        var into = new MemoryStream();
        into.Write(head);
        var writer = PipeWriter.Create(into, new StreamPipeWriterOptions(leaveOpen: true));
        await BodyWriteStream.WriteAsync(writer, content, framing, trailers, ct).ConfigureAwait(false);
        await writer.CompleteAsync().ConfigureAwait(false);
        return into.ToArray();
    }
}
