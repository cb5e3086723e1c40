using HttpUtil.Core;

namespace HttpUtil;

/// <summary>What a connection knows about a message it read off the wire.</summary>
internal sealed class WireInfo
{
    public RequestHead? Request => RequestParsed?.Head;
    public ResponseHead? Response => ResponseParsed?.Head;
    public Parsed<RequestHead>? RequestParsed { get; init; }
    public Parsed<ResponseHead>? ResponseParsed { get; init; }

    /// <summary>The head as read (built on first use for a head read in canonical form).</summary>
    public string Raw => RequestParsed?.Raw ?? ResponseParsed?.Raw ?? "";
    public bool IsLast { get; init; }
    public Headers? Trailers { get; set; }
    public IReadOnlyList<ResponseHead> Interim { get; init; } = [];

    /// <summary>A 101 (or a successful CONNECT): the connection now carries another protocol.</summary>
    public bool Switching { get; init; }
}

/// <summary>A request read off the wire, carrying what the connection knows about it.</summary>
internal sealed class WireRequestMessage(HttpMethod method, Uri? uri, WireInfo wire) : HttpRequestMessage(method, uri)
{
    public WireInfo Wire { get; } = wire;
}

/// <summary>A response read off the wire, carrying what the connection knows about it.</summary>
internal sealed class WireResponseMessage(System.Net.HttpStatusCode status, WireInfo wire) : HttpResponseMessage(status)
{
    public WireInfo Wire { get; } = wire;
}

/// <summary>
/// What <see cref="ClientConn"/> and <see cref="ServerConn"/> attach to the messages they read off the
/// wire: the exact head (field order, name casing, raw request-target), the persist-EOF mark, trailers
/// of a request body, and interim (1xx) responses. Messages built by the caller have none of it: the
/// methods then return null, false or an empty list.
/// </summary>
public static class WireMessage
{
    internal static WireInfo? Info(object message) => message switch
    {
        WireRequestMessage r => r.Wire,
        WireResponseMessage r => r.Wire,
        _ => null,
    };

    /// <summary>The request head exactly as read (fields in wire order, names as sent, raw target), or null
    /// when <paramref name="request"/> was not read by a <see cref="ServerConn"/>.</summary>
    /// <param name="request">A request returned by <see cref="ServerConn.ReadAsync"/>.</param>
    /// <returns>The head, or null.</returns>
    public static RequestHead? GetWireHead(this HttpRequestMessage request) => Info(request)?.Request;

    /// <summary>The final response head exactly as read, or null when <paramref name="response"/> was not
    /// read by a <see cref="ClientConn"/>.</summary>
    /// <param name="response">A response returned by <see cref="ClientConn.ReadAsync"/>.</param>
    /// <returns>The head, or null.</returns>
    public static ResponseHead? GetWireHead(this HttpResponseMessage response) => Info(response)?.Response;

    /// <summary>The head's bytes as read (Latin-1 text, one char per byte, ending with the empty line),
    /// or null for a message not read off the wire.</summary>
    /// <param name="request">A request returned by <see cref="ServerConn.ReadAsync"/>.</param>
    /// <returns>The raw head, or null.</returns>
    public static string? GetRawHead(this HttpRequestMessage request) => Info(request)?.Raw;

    /// <summary>The final response head's bytes as read (Latin-1 text), or null for a message not read
    /// off the wire.</summary>
    /// <param name="response">A response returned by <see cref="ClientConn.ReadAsync"/>.</param>
    /// <returns>The raw head, or null.</returns>
    public static string? GetRawHead(this HttpResponseMessage response) => Info(response)?.Raw;

    /// <summary>
    /// True when this request ended its connection logically (Go returns it together with
    /// ErrPersistEOF): it said <c>Connection: close</c>, or it is HTTP/1.0 without keep-alive. Answer
    /// it; the next <see cref="ServerConn.ReadAsync"/> throws <see cref="PersistEofException"/>, and the
    /// response written for it says <c>Connection: close</c>.
    /// </summary>
    /// <param name="request">A request returned by <see cref="ServerConn.ReadAsync"/>.</param>
    /// <returns>True for the last request of the connection; false otherwise and for other messages.</returns>
    public static bool IsLastOnConnection(this HttpRequestMessage request) => Info(request)?.IsLast ?? false;

    /// <summary>
    /// True when this response ended its connection logically (Go returns it together with
    /// ErrPersistEOF): <c>Connection: close</c>, HTTP/1.0 without keep-alive, or a body delimited by the
    /// end of the connection. Read its body; the next read or write throws <see cref="PersistEofException"/>.
    /// </summary>
    /// <param name="response">A response returned by <see cref="ClientConn.ReadAsync"/>.</param>
    /// <returns>True for the last response of the connection; false otherwise and for other messages.</returns>
    public static bool IsLastOnConnection(this HttpResponseMessage response) => Info(response)?.IsLast ?? false;

    /// <summary>The trailer fields of a chunked request body, once the body has been read to its end;
    /// null before that, and for requests that were not chunked or not read off the wire. (Response
    /// trailers go to <see cref="HttpResponseMessage.TrailingHeaders"/>.)</summary>
    /// <param name="request">A request returned by <see cref="ServerConn.ReadAsync"/>.</param>
    /// <returns>The trailers, or null.</returns>
    public static Headers? GetTrailers(this HttpRequestMessage request) => Info(request)?.Trailers;

    /// <summary>The interim (1xx) responses that came before this final response, in order (101 Switching
    /// Protocols is final and never listed). Empty when there were none.</summary>
    /// <param name="response">A response returned by <see cref="ClientConn.ReadAsync"/>.</param>
    /// <returns>The interim heads.</returns>
    public static IReadOnlyList<ResponseHead> GetInterimResponses(this HttpResponseMessage response) =>
        Info(response)?.Interim ?? [];

    private static readonly HttpRequestOptionsKey<Func<Headers>> TrailersKey = new("HttpUtil.RequestTrailers");

    /// <summary>
    /// Sends trailer fields after the body of <paramref name="request"/> when <see cref="ClientConn"/> or
    /// <see cref="Transport"/> writes it chunked (content of unknown length, HTTP/1.1). <paramref name="trailers"/>
    /// is called once the whole body has been written, so it may report what only the end of the body knows;
    /// a body sent with a Content-Length carries no trailers and the callback is not called.
    /// </summary>
    /// <param name="request">The request to send.</param>
    /// <param name="trailers">Returns the trailer fields (checked as header fields when written).</param>
    /// <returns><paramref name="request"/>.</returns>
    public static HttpRequestMessage WithTrailers(this HttpRequestMessage request, Func<Headers> trailers)
    {
        ArgumentNullException.ThrowIfNull(request);
        anyTrailers = true;
        request.Options.Set(TrailersKey, trailers);
        return request;
    }

    // Reading Options creates the request's options dictionary: skip it until trailers were ever attached.
    private static volatile bool anyTrailers;

    /// <summary>The trailers callback set by <see cref="WithTrailers"/>, or null.</summary>
    internal static Func<Headers>? TrailersOf(HttpRequestMessage request) =>
        anyTrailers && request.Options.TryGetValue(TrailersKey, out var t) ? t : null;
}
