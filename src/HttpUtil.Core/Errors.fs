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

    override this.ToString() =
        sprintf "%A at byte %d: %s" this.Kind this.Offset this.Message

/// Builders for `HttpError`.
module HttpError =
    /// An error of kind `kind` at byte `offset`.
    let create kind offset message =
        {
            Kind = kind
            Offset = offset
            Message = message
        }

    /// The same error moved `delta` bytes further (used when a parse starts inside a larger input).
    let shift (delta: int64) (e: HttpError) = { e with Offset = e.Offset + delta }

    /// Describes a character for an error message: printable ASCII as itself, anything else as hex.
    let describeChar (c: char) =
        if c > ' ' && c < '\x7f' then
            sprintf "'%c'" c
        else
            sprintf "0x%02X" (int c)

/// Explicit bounds on everything the parsers read. Exceeding one is a distinct error, never an
/// unbounded read. Defaults follow Kestrel's (32 KiB heads, 100 fields, 8 KiB lines).
type Limits =
    {
        /// Most bytes in a head, start line and terminating empty line included. Default 32 KiB.
        MaxHeadBytes: int
        /// Most field lines in a head (and in a trailer section). Default 100.
        MaxHeaderCount: int
        /// Most bytes in one line of a head, line ending excluded. Default 8 KiB.
        MaxLineLength: int
        /// Most hex digits in a chunk-size. Default 16 (larger sizes cannot fit an Int64 anyway).
        MaxChunkSizeDigits: int
        /// Most bytes in a chunk-size line, extensions included. Default 4 KiB.
        MaxChunkLineLength: int
        /// Most bytes in a trailer section, terminating empty line included. Default 16 KiB.
        MaxTrailerBytes: int
    }

    /// The default limits.
    static member Default =
        {
            MaxHeadBytes = 32 * 1024
            MaxHeaderCount = 100
            MaxLineLength = 8 * 1024
            MaxChunkSizeDigits = 16
            MaxChunkLineLength = 4 * 1024
            MaxTrailerBytes = 16 * 1024
        }

/// Repairs a recipient may make under RFC 9112; each is off by default (strict parsing).
type Lenience =
    {
        /// Accept a LF without CR as a line ending (RFC 9112 section 2.2 lets a recipient do so).
        AllowBareLf: bool
        /// In responses, replace each obs-fold by one SP instead of rejecting it (RFC 9112 section 5.2).
        /// Obs-fold in requests is always rejected.
        AllowObsFoldInResponses: bool
    }

    /// Strict parsing: no repairs.
    static member Strict =
        {
            AllowBareLf = false
            AllowObsFoldInResponses = false
        }

/// Limits plus lenience: everything that changes how input is parsed.
type ParserSettings =
    {
        Limits: Limits
        Lenience: Lenience
    }

    /// Default limits, strict parsing.
    static member Default =
        {
            Limits = Limits.Default
            Lenience = Lenience.Strict
        }

    /// These settings with other limits (for C#, where `with` does not apply to F# records).
    member this.WithLimits(limits: Limits) = { this with Limits = limits }

    /// These settings with other lenience (for C#, where `with` does not apply to F# records).
    member this.WithLenience(lenience: Lenience) = { this with Lenience = lenience }
