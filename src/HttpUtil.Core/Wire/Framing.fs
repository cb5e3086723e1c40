/// How long a message body is (RFC 9112 section 6.3). Ambiguous framing is rejected, never guessed:
/// these rules are what stands between a proxy and request smuggling.
module HttpUtil.Core.Framing

open System

/// How a message body is delimited on the wire.
type BodyLength =
    /// No body at all (not even an empty chunked one).
    | NoBody
    /// Exactly this many bytes (0 is allowed and means an empty body).
    | ContentLength of int64
    /// Chunked transfer coding: chunks until the last-chunk, then trailers.
    | Chunked
    /// Everything until the peer closes the connection (responses only).
    | UntilClose

let private err kind message = Error(HttpError.create kind 0L message)

/// The value of the Content-Length fields: absent, one valid value (repeated identical values,
/// in one field as a list or in several fields, count as one), or an error. Identical means the same digits:
/// `5` and `005` are the same number but not the same value (RFC 9110 section 8.6 allows only identical values),
/// and Kestrel, llhttp and Go refuse them together too.
let contentLength (headers: Headers) : Result<int64 voption, HttpError> =
    let fields = headers.AsSpan()
    let mutable result = Ok ValueNone
    let mutable width = 0
    let mutable i = 0

    // Every element of every Content-Length field, read from spans: the common single value
    // allocates nothing.
    while result.IsOk && i < fields.Length do
        if String.Equals(fields[i].Name, "Content-Length", StringComparison.OrdinalIgnoreCase) then
            let value = fields[i].Value
            let mutable rest = value.AsSpan()
            let mutable more = true

            while more && result.IsOk do
                let comma = rest.IndexOf(',')

                let element =
                    (if comma < 0 then rest else rest.Slice(0, comma)).Trim(" \t".AsSpan())

                more <- comma >= 0

                rest <-
                    if comma < 0 then
                        ReadOnlySpan.Empty
                    else
                        rest.Slice(comma + 1)

                let mutable n = 0L

                let mutable digits = 0

                while digits < element.Length && Char.IsAsciiDigit element[digits] do
                    digits <- digits + 1

                if element.Length = 0 || element.Length > 19 || digits < element.Length then
                    result <-
                        err
                            ErrorKind.InvalidContentLength
                            (sprintf
                                "Content-Length %A is not 1*DIGIT within a 64-bit length (RFC 9110 section 8.6)"
                                (element.ToString()))
                elif
                    not (
                        Int64.TryParse(
                            element,
                            Globalization.NumberStyles.None,
                            Globalization.CultureInfo.InvariantCulture,
                            &n
                        )
                    )
                then
                    result <-
                        err
                            ErrorKind.InvalidContentLength
                            (sprintf
                                "Content-Length %s does not fit a 64-bit length (RFC 9110 section 8.6)"
                                (element.ToString()))
                else
                    match result with
                    | Ok(ValueSome m) when m <> n || element.Length <> width ->
                        result <-
                            err
                                ErrorKind.DifferingContentLengths
                                (sprintf
                                    "Content-Length values %s and %s differ; the message framing is ambiguous (RFC 9112 section 6.3)"
                                    (m.ToString().PadLeft(width, '0'))
                                    (element.ToString()))
                    | _ ->
                        width <- element.Length
                        result <- Ok(ValueSome n)

        i <- i + 1

    result

/// The transfer codings of the Transfer-Encoding fields, in order, lower-cased (parameters dropped).
let transferCodings (headers: Headers) =
    Headers.listValues "Transfer-Encoding" headers
    |> List.map (fun c ->
        let semi = c.IndexOf(';')
        (if semi >= 0 then c.Substring(0, semi) else c).Trim(' ', '\t').ToLowerInvariant())

/// True when a Transfer-Encoding element is chunked with parameters (`chunked;q=1`): chunked defines none, and their
/// presence is treated as an error (RFC 9112 section 7), as Kestrel, llhttp and Go do.
let private chunkedWithParameters (headers: Headers) =
    Headers.listValues "Transfer-Encoding" headers
    |> List.exists (fun c ->
        let semi = c.IndexOf(';')

        semi >= 0
        && c.Substring(0, semi).Trim(' ', '\t').Equals("chunked", StringComparison.OrdinalIgnoreCase))

/// True when chunked is the final transfer coding.
let private chunkedLast codings =
    match List.tryLast codings with
    | Some "chunked" -> true
    | _ -> false

let private checkCodings (isRequest: bool) codings =
    let chunkedCount = codings |> List.filter ((=) "chunked") |> List.length

    if codings |> List.exists (fun c -> not (CharClass.isToken c)) then
        err
            ErrorKind.UnsupportedTransferCoding
            "Transfer-Encoding holds an element that is not a token (RFC 9112 section 6.1)"
    elif chunkedCount > 1 then
        err ErrorKind.UnsupportedTransferCoding "chunked must be applied only once (RFC 9112 section 6.1)"
    elif isRequest && chunkedCount = 1 && not (chunkedLast codings) then
        err ErrorKind.UnsupportedTransferCoding "chunked must be applied once and last (RFC 9112 section 6.1)"
    else
        // A response whose codings end in another than chunked is read until the connection closes
        // (RFC 9112 section 6.3, rule 4).
        Ok()

/// The common rules: Transfer-Encoding wins only when alone; TE with CL, TE in HTTP/1.0,
/// and bad Content-Length are errors.
let private framing (version: Http1Version) (headers: Headers) (isRequest: bool) =
    let hasTe = Headers.contains "Transfer-Encoding" headers

    match contentLength headers with
    | Error e -> Error e
    | Ok cl ->
        if hasTe && cl.IsSome then
            err
                ErrorKind.TransferEncodingWithContentLength
                "Transfer-Encoding and Content-Length together; the framing is ambiguous and must be rejected (RFC 9112 sections 6.3 and 11.2)"
        elif hasTe && version = Http10 then
            err
                ErrorKind.TransferEncodingInHttp10
                "Transfer-Encoding in an HTTP/1.0 message; the framing is faulty (RFC 9112 section 6.1)"
        elif hasTe && chunkedWithParameters headers then
            err
                ErrorKind.InvalidFieldValue
                "Transfer-Encoding gives chunked parameters, which it does not define (RFC 9112 section 7)"
        elif hasTe then
            let codings = transferCodings headers

            match checkCodings isRequest codings with
            | Error e -> Error e
            | Ok() ->
                if chunkedLast codings then
                    Ok Chunked
                elif isRequest then
                    err
                        ErrorKind.UnsupportedTransferCoding
                        "a request Transfer-Encoding must end with chunked (RFC 9112 section 6.3)"
                else
                    Ok UntilClose
        else
            match cl with
            | ValueSome n -> Ok(ContentLength n)
            | ValueNone -> Ok(if isRequest then NoBody else UntilClose)

/// The body length of a request (RFC 9112 section 6.3, rules 3 to 6).
let requestBody (head: RequestHead) : Result<BodyLength, HttpError> = framing head.Version head.Headers true

/// True when a response to `requestMethod` with `status` never has a body: HEAD, 1xx, 204, 304,
/// and 2xx to CONNECT (the connection becomes a tunnel).
let responseHasNoBody (requestMethod: string) (status: int) =
    requestMethod = "HEAD"
    || (status >= 100 && status < 200)
    || status = 204
    || status = 304
    || (requestMethod = "CONNECT" && Message.connectSucceeded status)

/// The body length of a response to a request with method `requestMethod` (RFC 9112 section 6.3,
/// rules 1 to 7). Content-Length on a bodiless response describes the representation, not the
/// body, and is not checked.
let responseBody (requestMethod: string) (head: ResponseHead) : Result<BodyLength, HttpError> =
    if responseHasNoBody requestMethod head.Status then
        Ok NoBody
    else
        framing head.Version head.Headers false

/// What a sender knows about the body it is about to write.
[<Struct>]
type OutgoingBody =
    /// There is no body at all.
    | Absent
    /// A body of exactly this many bytes.
    | Known of Length: int64
    /// A body whose length is not known before it has been sent.
    | Unknown

/// Methods whose requests carry `Content-Length: 0` even without a body, as user agents do
/// (RFC 9110 section 8.6: a request with a body-defining method).
let private expectsRequestBody (requestMethod: string) =
    requestMethod = "POST" || requestMethod = "PUT" || requestMethod = "PATCH"

/// How to frame a request body on the wire: a known length as Content-Length, an unknown length
/// as chunked in HTTP/1.1. HTTP/1.0 has no chunked coding and a request cannot be delimited by
/// closing, so an unknown length there is an error.
let planRequest (version: Http1Version) (requestMethod: string) (body: OutgoingBody) : Result<BodyLength, HttpError> =
    match body with
    | Absent ->
        Ok(
            if expectsRequestBody requestMethod then
                ContentLength 0L
            else
                NoBody
        )
    | Known n when n >= 0L -> Ok(ContentLength n)
    | Known n -> err ErrorKind.InvalidContentLength (sprintf "a body length of %d is negative" n)
    | Unknown when version = Http11 -> Ok Chunked
    | Unknown ->
        err
            ErrorKind.InvalidHead
            "an HTTP/1.0 request body needs a known length: HTTP/1.0 has no chunked coding (RFC 9112 section 6.1)"

/// How to frame a response body, and whether the connection must close after it: none for
/// HEAD, 1xx, 204, 304 and 2xx to CONNECT; a known length as Content-Length; an unknown length as
/// chunked when both the request and the response are HTTP/1.1, and otherwise delimited by
/// closing the connection.
let planResponse
    (requestMethod: string)
    (requestVersion: Http1Version)
    (responseVersion: Http1Version)
    (status: int)
    (body: OutgoingBody)
    : struct (BodyLength * bool) =
    if responseHasNoBody requestMethod status then
        struct (NoBody, false)
    else
        match body with
        | Absent -> struct (ContentLength 0L, false)
        | Known n when n >= 0L -> struct (ContentLength n, false)
        | _ when requestVersion = Http11 && responseVersion = Http11 -> struct (Chunked, false)
        | _ -> struct (UntilClose, true)

/// True when a body framed as `length` puts body bytes on the wire (a zero Content-Length and
/// no body at all do not).
let sendsBody (length: BodyLength) =
    match length with
    | NoBody
    | ContentLength 0L -> false
    | _ -> true

/// `headers` with the framing fields set for `length`: Content-Length for a length, Transfer-Encoding
/// chunked for chunked (and no Content-Length), neither when the body runs until close. With
/// `NoBody` the fields are left as they are (a HEAD response's Content-Length describes the
/// representation), except that Transfer-Encoding is removed from requests.
let withFraming (isRequest: bool) (length: BodyLength) (headers: Headers) =
    match length with
    | ContentLength n ->
        headers
        |> Headers.remove "Transfer-Encoding"
        |> Headers.set "Content-Length" (string n)
    | Chunked ->
        headers
        |> Headers.remove "Content-Length"
        |> Headers.set "Transfer-Encoding" "chunked"
    | UntilClose -> headers |> Headers.remove "Content-Length" |> Headers.remove "Transfer-Encoding"
    | NoBody when isRequest -> headers |> Headers.remove "Transfer-Encoding"
    | NoBody -> headers
