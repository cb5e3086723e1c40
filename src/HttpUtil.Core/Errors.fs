namespace HttpUtil.Core

/// What went wrong while reading or writing an HTTP/1.x message. Every kind maps to one rule
/// of RFC 9112 / RFC 9110 (or to one configured limit), so callers can choose a response
/// (400, 413, 431, 505, close) without parsing the message text.
type ErrorKind =
    // Limits.
    /// The head (start line plus fields) is larger than `Limits.MaxHeadBytes`.
    | HeadTooLarge = 1
    /// One line of a head is longer than `Limits.MaxLineLength`.
    | LineTooLong = 2
    /// The request-line is longer than `Limits.MaxLineLength` (answer 414 URI Too Long).
    | RequestLineTooLong = 7
    /// A head carries more field lines than `Limits.MaxHeaderCount`.
    | TooManyHeaders = 3
    /// A trailer section is larger than `Limits.MaxTrailerBytes` or has too many fields.
    | TrailerTooLarge = 4
    /// A chunk-size has more hex digits than `Limits.MaxChunkSizeDigits`, or does not fit an Int64.
    | ChunkSizeTooLarge = 5
    // Start lines.
    /// The request-line is not `method SP request-target SP HTTP-version` (RFC 9112 section 3).
    | InvalidRequestLine = 10
    /// The method is empty or holds a character that is not a tchar (RFC 9110 section 9.1).
    | InvalidMethod = 11
    /// The request-target is none of the four forms of RFC 9112 section 3.2, or does not fit its method.
    | InvalidTarget = 12
    /// The HTTP-version is well formed but is neither HTTP/1.0 nor HTTP/1.1 (answer 505).
    | UnsupportedVersion = 13
    /// The input is the HTTP/2 connection preface (RFC 9113 section 3.4), not HTTP/1.x.
    | Http2Preface = 14
    /// The status-line is not `HTTP-version SP 3DIGIT SP reason-phrase` (RFC 9112 section 4).
    | InvalidStatusLine = 15
    /// The HTTP-version is not of the form `HTTP/DIGIT.DIGIT` (RFC 9112 section 2.3).
    | InvalidVersion = 16
    // Field lines.
    /// A field name is empty or holds a character that is not a tchar (RFC 9110 section 5.1).
    | InvalidFieldName = 20
    /// Whitespace between a field name and its colon (RFC 9112 section 5.1: must be rejected).
    | WhitespaceBeforeColon = 21
    /// A field value holds a control character other than HTAB (RFC 9110 section 5.5).
    | InvalidFieldValue = 22
    /// A line folded with obs-fold where it is not allowed (RFC 9112 section 5.2).
    | ObsFold = 23
    /// A request without Host in HTTP/1.1, with more than one Host field, or whose Host is not
    /// `uri-host [ ":" port ]` (RFC 9112 section 3.2: answer 400).
    | InvalidHost = 26
    /// A CR not followed by LF (RFC 9112 section 2.2).
    | BareCR = 24
    /// A LF not preceded by CR, while bare LF is not accepted (RFC 9112 section 2.2).
    | BareLF = 25
    // Framing.
    /// Transfer-Encoding and Content-Length both present (RFC 9112 section 6.3, request smuggling).
    | TransferEncodingWithContentLength = 30
    /// A Content-Length value that is not 1*DIGIT or does not fit an Int64 (RFC 9110 section 8.6).
    | InvalidContentLength = 31
    /// Several Content-Length values that differ (RFC 9112 section 6.3).
    | DifferingContentLengths = 32
    /// A request Transfer-Encoding whose final coding is not chunked, or chunked applied twice (RFC 9112 section 6.3).
    | UnsupportedTransferCoding = 33
    /// Transfer-Encoding in an HTTP/1.0 message (RFC 9112 section 6.1: the framing is faulty).
    | TransferEncodingInHttp10 = 34
    /// A chunk-size line that is not `1*HEXDIG [ chunk-ext ] CRLF` (RFC 9112 section 7.1).
    | InvalidChunkSize = 35
    /// Chunk data not followed by CRLF (RFC 9112 section 7.1).
    | InvalidChunkTerminator = 36
    /// A chunk extension that is not `;name[=value]` (RFC 9112 section 7.1.1).
    | InvalidChunkExtension = 37
    /// The input ended inside a head or a body: the peer closed or reset the connection early.
    | UnexpectedEnd = 38
    /// A body longer than its Content-Length was offered for writing, or a peer sent more than it
    /// announced (RFC 9112 section 6.2).
    | ContentLengthOverrun = 39
    /// No complete request head arrived within the server's head timeout, counted from the start of the read
    /// (keep-alive idle time included): a slow or idle client (answer 408 Request Timeout, then close).
    | HeadTimeout = 9
    /// A request body stopped arriving: no byte of it within the server's body idle timeout while the application
    /// was reading it (answer 408 Request Timeout, then close).
    | BodyTimeout = 41
    /// A request body arrived slower than the server's minimum data rate (bytes per second of the time the application
    /// spent waiting on reads, after a grace period): a client that trickles a body just fast enough to beat the idle
    /// timeout (answer 408 Request Timeout, then close).
    | BodyTooSlow = 42
    /// A request body longer than `Limits.MaxRequestBodyBytes`: announced by Content-Length, or found while a
    /// chunked or other body arrives (answer 413 Content Too Large).
    | BodyTooLarge = 8
    /// More interim (1xx) responses, or more bytes of them, than `Limits.MaxInterimResponses` and
    /// `Limits.MaxHeadBytes` allow before the final response.
    | TooManyInterimResponses = 6
    // Serialization.
    /// A head given to a serializer that would put an invalid or ambiguous message on the wire.
    | InvalidHead = 40

/// An error found in HTTP/1.x input or output: what kind, where (byte offset from the start of
/// the input handed to the parser, or 0 for a whole-message rule), and a message that names the rule.
type HttpError =
    {
        Kind: ErrorKind
        Offset: int64
        Message: string
    }

    /// The status a server answers a request that failed this way (RFC 9110 section 15): 414 for a
    /// request-line over the line limit, 431 for other heads and fields over a limit, 413 for a
    /// request body, trailer section or chunk size over one, 501 for a transfer coding it does not implement, 505
    /// for an HTTP version it does not speak, 400 for every other break of the grammar or framing.
    member this.StatusHint =
        match this.Kind with
        | ErrorKind.RequestLineTooLong -> 414
        | ErrorKind.HeadTooLarge
        | ErrorKind.LineTooLong
        | ErrorKind.TooManyHeaders -> 431
        | ErrorKind.TrailerTooLarge
        | ErrorKind.BodyTooLarge
        | ErrorKind.ChunkSizeTooLarge -> 413
        | ErrorKind.UnsupportedTransferCoding -> 501
        | ErrorKind.HeadTimeout
        | ErrorKind.BodyTimeout
        | ErrorKind.BodyTooSlow -> 408
        | ErrorKind.UnsupportedVersion -> 505
        | _ -> 400

    override this.ToString() =
        sprintf "%A at byte %d: %s" this.Kind this.Offset this.Message

/// Builders for `HttpError`, and the status code a server answers each kind with.
module HttpError =

    /// An error of kind `kind` at byte `offset`.
    let create kind offset message =
        {
            Kind = kind
            Offset = offset
            Message = message
        }

    /// The status a server answers a request that failed with `kind`: see `HttpError.StatusHint`.
    let statusHint (kind: ErrorKind) = (create kind 0L "").StatusHint

    /// The same error moved `delta` bytes further (used when a parse starts inside a larger input).
    let shift (delta: int64) (e: HttpError) = { e with Offset = e.Offset + delta }

    /// Describes a character for an error message: printable ASCII as itself, anything else as hex.
    let describeChar (c: char) =
        if c > ' ' && c < '\x7f' then
            sprintf "'%c'" c
        else
            sprintf "0x%02X" (int c)
