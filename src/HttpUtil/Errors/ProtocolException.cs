using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// The base of every protocol error this library throws (Go's <c>http.ProtocolError</c>). Catch it to
/// handle every HTTP/1.x-level failure at once; the derived types say which one. It derives from
/// <see cref="IOException"/>, as .NET's own <c>HttpIOException</c> does, so a body cut short or
/// malformed reaches <see cref="HttpClient"/> users as <see cref="HttpRequestException"/> (when the
/// client buffers the content) or as an <see cref="IOException"/> (when they read the stream), whatever
/// the cut. I/O failures of the underlying stream surface as plain <see cref="IOException"/>.
/// </summary>
public class ProtocolException : IOException
{
    /// <summary>Creates the exception with a message that says what went wrong.</summary>
    /// <param name="message">What went wrong; never null.</param>
    public ProtocolException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and the exception that caused it.</summary>
    /// <param name="message">What went wrong; never null.</param>
    /// <param name="inner">The cause, or null.</param>
    public ProtocolException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>
/// The connection has ended logically (Go's <c>ErrPersistEOF</c>): a message with
/// <c>Connection: close</c>, or an HTTP/1.0 message without keep-alive, went by, or (on a
/// <see cref="ServerConn"/>) the peer closed the connection in the middle of a request head. No more
/// messages can be exchanged; close the connection. The message that ended it was returned normally,
/// marked (see <see cref="WireMessage.IsLastOnConnection(HttpRequestMessage)"/>).
/// </summary>
public sealed class PersistEofException : ProtocolException
{
    /// <summary>Creates the exception.</summary>
    public PersistEofException() : base("persistent connection closed") { }
}

/// <summary>
/// A response was written on a <see cref="ServerConn"/> after <c>Close</c> or <c>HijackAsync</c> (Go's
/// <c>ErrClosed</c>). Every other call after <c>Close</c> or <c>HijackAsync</c> throws
/// <see cref="ObjectDisposedException"/>, as Go returns its unexported errClosed there.
/// </summary>
public sealed class ConnectionClosedException : ProtocolException
{
    /// <summary>Creates the exception.</summary>
    public ConnectionClosedException() : base("connection closed by user") { }
}

/// <summary>
/// A response was read (client) or written (server) for a request this connection did not write or
/// read, or already answered (Go's <c>ErrPipeline</c>). Nothing on the connection changed.
/// </summary>
public sealed class PipelineException : ProtocolException
{
    /// <summary>Creates the exception.</summary>
    public PipelineException() : base("pipeline error: the request is not pending on this connection") { }
}

/// <summary>
/// The bytes on the wire break HTTP/1.x or exceed a configured limit. <see cref="Kind"/> names the
/// rule, <see cref="Offset"/> where it broke (from the start of the head, or of the body for body
/// errors). The connection's read side is broken: every later read throws.
/// </summary>
public sealed class MalformedMessageException : ProtocolException
{
    /// <summary>Creates the exception from the core's error value.</summary>
    /// <param name="error">The error the parser reported.</param>
    public MalformedMessageException(HttpError error)
        : base($"{error.Kind} at byte {error.Offset}: {error.Message}")
    {
        Error = error;
    }

    /// <summary>The parser's error value.</summary>
    public HttpError Error { get; }

    /// <summary>Which rule or limit the input broke.</summary>
    public ErrorKind Kind => Error.Kind;

    /// <summary>The byte offset where the input broke the rule.</summary>
    public long Offset => Error.Offset;
}

/// <summary>
/// No complete request head arrived within <see cref="ServerConn.HeadTimeout"/> (counted from the start of
/// <see cref="ServerConn.ReadAsync"/>, so keep-alive idle time counts), or a request body stopped arriving for
/// <see cref="ServerConn.BodyIdleTimeout"/> while it was read, or came slower than
/// <see cref="ServerConn.MinRequestBodyDataRate"/>: a slow or idle client. The read side is
/// broken, as after a cancelled read; close the connection. <see cref="Error"/> has the kind
/// (<see cref="ErrorKind.HeadTimeout"/>) and the status a server would answer (408).
/// </summary>
public sealed class RequestTimeoutException : ProtocolException
{
    /// <summary>Creates the exception for a head timeout of <paramref name="timeout"/>.</summary>
    /// <param name="timeout">The head timeout that passed.</param>
    public RequestTimeoutException(TimeSpan timeout)
        : this(timeout, ErrorKind.HeadTimeout, $"no complete request head within {timeout.TotalSeconds:0.###} s (HeadTimeout)")
    {
    }

    private RequestTimeoutException(TimeSpan timeout, ErrorKind kind, string message) : base(message)
    {
        Timeout = timeout;
        Error = new HttpError(kind, 0L, message);
    }

    /// <summary>The exception for a request body that stopped arriving for <paramref name="timeout"/>
    /// (<see cref="ServerConn.BodyIdleTimeout"/>).</summary>
    /// <param name="timeout">The body idle timeout that passed.</param>
    /// <returns>The exception, with <see cref="ErrorKind.BodyTimeout"/>.</returns>
    public static RequestTimeoutException ForBody(TimeSpan timeout) =>
        new(timeout, ErrorKind.BodyTimeout, $"no byte of the request body for {timeout.TotalSeconds:0.###} s (BodyIdleTimeout)");

    /// <summary>The exception for a request body that came slower than <paramref name="rate"/>
    /// (<see cref="ServerConn.MinRequestBodyDataRate"/>): <paramref name="bytes"/> in <paramref name="waited"/> of waiting.</summary>
    /// <param name="rate">The minimum rate the body fell below.</param>
    /// <param name="bytes">Body bytes received by then.</param>
    /// <param name="waited">Time the application had spent waiting on reads of the body.</param>
    /// <returns>The exception, with <see cref="ErrorKind.BodyTooSlow"/>; <see cref="Timeout"/> is <paramref name="waited"/>.</returns>
    public static RequestTimeoutException ForBodyRate(MinDataRate rate, long bytes, TimeSpan waited)
    {
        ArgumentNullException.ThrowIfNull(rate);
        var seconds = Math.Max(waited.TotalSeconds, 1e-3);
        return new(waited, ErrorKind.BodyTooSlow,
            $"the request body came at {bytes / seconds:0.#} B/s ({bytes} bytes in {seconds:0.###} s of waiting), below the minimum of " +
            $"{rate.BytesPerSecond:0.#} B/s (MinRequestBodyDataRate)");
    }

    /// <summary>The timeout that passed (for <see cref="ErrorKind.BodyTooSlow"/>, the time spent waiting on the body).</summary>
    public TimeSpan Timeout { get; }

    /// <summary>The error value: <see cref="ErrorKind.HeadTimeout"/>, <see cref="ErrorKind.BodyTimeout"/> or
    /// <see cref="ErrorKind.BodyTooSlow"/>, whose <c>StatusHint</c> is 408.</summary>
    public HttpError Error { get; }
}

/// <summary>
/// The unread rest of the previous message's body was larger than the connection's drain limit, so
/// the next message could not be reached. The connection is closed.
/// </summary>
public sealed class DrainLimitException : ProtocolException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="limit">The drain limit in bytes.</param>
    public DrainLimitException(long limit)
        : base($"the unread rest of the previous body is larger than the drain limit of {limit} bytes; the connection was closed")
    {
        Limit = limit;
    }

    /// <summary>The drain limit in bytes.</summary>
    public long Limit { get; }
}
