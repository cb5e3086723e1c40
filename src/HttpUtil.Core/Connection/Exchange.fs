namespace HttpUtil.Core

/// A request head ready to write, with everything the writer must know about it.
type OutgoingRequest =
    {
        /// The head: target in the right form, Host first, framing fields set, validated.
        Head: RequestHead
        /// How the body goes on the wire.
        Body: Framing.BodyLength
        /// The request ends the connection (RFC 9112 section 9.3).
        Closes: bool
        /// The request waits for `100 Continue` before its body (and has a body to wait with).
        ExpectsContinue: bool
    }

/// A response head ready to write.
type OutgoingResponse =
    {
        /// The head, framing fields set, validated.
        Head: ResponseHead
        /// How the body goes on the wire.
        Body: Framing.BodyLength
        /// The response ends the connection (its own Connection field, HTTP/1.0, or a body
        /// delimited by closing).
        Closes: bool
    }

/// A request head read off the wire, interpreted.
type IncomingRequest =
    {
        /// How long the body is.
        Body: Framing.BodyLength
        /// The request ends the connection.
        Closes: bool
        /// The request waits for `100 Continue` before sending its body.
        ExpectsContinue: bool
    }

/// What a response read off the wire is, for the exchange it belongs to.
type ResponseKind =
    /// An interim 1xx (not 101): read past it to the final response.
    | Interim
    /// The final response.
    | Final
    /// 101 Switching Protocols, or 2xx to CONNECT: after this head the connection carries
    /// another protocol or a tunnel (hijack it to use it).
    | Switching

/// A response head read off the wire, interpreted.
type IncomingResponse =
    {
        /// Interim, final, or switching.
        Kind: ResponseKind
        /// How long the body is.
        Body: Framing.BodyLength
        /// The response ends the connection.
        Closes: bool
    }

/// The core's one call per role and direction for heads: prepare a head to write (target, Host,
/// framing, Connection, validation) and interpret a head read (framing, Host, persistence,
/// expectations, interim or final). The I/O shell moves the bytes and decides nothing.
module Exchange =
    let private invalid kind message = Error(HttpError.create kind 0L message)

    let private isHexDigit (c: char) = CharClass.isHex c

    let private isRegNameChar (c: char) =
        (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9')
        || "-._~!$&'()*+,;=%".IndexOf c >= 0

    /// True when `value` is `uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986 section 3.2.2):
    /// an IP literal in brackets, or a reg-name / IPv4 address (possibly empty), then an optional
    /// port of digits.
    let isValidHost (value: string) =
        let hostEnd, hostOk =
            if value.StartsWith "[" then
                let close = value.IndexOf ']'

                if close < 0 then
                    value.Length, false
                else
                    let mutable ok = close > 1

                    for i in 1 .. close - 1 do
                        let c = value[i]

                        if not (isHexDigit c || c = ':' || c = '.' || c = 'v' || c = 'V') then
                            ok <- false

                    close + 1, ok
            else
                let colon = value.IndexOf ':'
                let e = if colon < 0 then value.Length else colon
                let mutable ok = true

                for i in 0 .. e - 1 do
                    let c = value[i]

                    if not (isRegNameChar c) then
                        ok <- false
                    elif
                        c = '%'
                        && (i + 2 >= value.Length
                            || not (isHexDigit value[i + 1] && isHexDigit value[i + 2]))
                    then
                        ok <- false

                e, ok

        hostOk
        && (hostEnd = value.Length
            || (value[hostEnd] = ':'
                && CharClass.forAllFrom System.Char.IsAsciiDigit (hostEnd + 1) value))

    /// Prepares a request head: the target for `uri` in the form the route needs, `Host` first
    /// (`host` when given, else the URI's authority), then `fields`, then the framing fields for
    /// `body`. HTTP/1.1 requires a Host (RFC 9112 section 3.2): a relative URI without a `host` is
    /// refused, as is a head that would not be valid on the wire.
    let prepareRequest
        (requestMethod: string)
        (uri: System.Uri)
        (version: Http1Version)
        (absoluteForm: bool)
        (host: string | null)
        (fields: System.Collections.Generic.IReadOnlyList<HeaderField>)
        (body: Framing.OutgoingBody)
        : Result<OutgoingRequest, HttpError> =
        let struct (target, form) = Message.requestTarget requestMethod absoluteForm uri

        let host =
            match host with
            | null -> Message.hostValue uri
            | h -> h

        if host.Length = 0 && version = Http11 && uri.IsAbsoluteUri |> not then
            invalid
                ErrorKind.InvalidHost
                "an HTTP/1.1 request needs a Host (RFC 9112 section 3.2): give it an absolute URI or set its Host header"
        else
            match Framing.planRequest version requestMethod body with
            | Error e -> Error e
            | Ok plan ->
                let fields =
                    if host.Length > 0 || version = Http11 then
                        let all = Array.zeroCreate (fields.Count + 1)
                        all[0] <- { Name = "Host"; Value = host }

                        for i in 0 .. fields.Count - 1 do
                            all[i + 1] <- fields[i]

                        Headers.Own all
                    else
                        Headers.OfSeq fields

                let head =
                    {
                        Method = requestMethod
                        Target = target
                        Form = form
                        Version = version
                        Headers = Framing.withFraming true plan fields
                    }

                match Serializer.validateRequest head with
                | Error e -> Error e
                | Ok() ->
                    Ok
                        {
                            Head = head
                            Body = plan
                            Closes = Persist.requestCloses head
                            ExpectsContinue = Continue.expects head && Framing.sendsBody plan
                        }

    /// Prepares a response head to a request with `requestMethod` and `requestVersion`: framing
    /// fields for `body` (none for HEAD, 1xx, 204, 304 and a 2xx to CONNECT), validated.
    let prepareResponse
        (requestMethod: string)
        (requestVersion: Http1Version)
        (version: Http1Version)
        (status: int)
        (reason: string)
        (fields: System.Collections.Generic.IReadOnlyList<HeaderField>)
        (body: Framing.OutgoingBody)
        : Result<OutgoingResponse, HttpError> =
        let struct (plan, _) =
            Framing.planResponse requestMethod requestVersion version status body

        let head =
            {
                Version = version
                Status = status
                Reason = reason
                Headers = Framing.withFraming false plan (Headers.OfSeq fields)
            }

        match Serializer.validateResponse head with
        | Error e -> Error e
        | Ok() ->
            Ok
                {
                    Head = head
                    Body = plan
                    Closes = Persist.responseClosesWith head plan
                }

    /// The Host rule for a request read (RFC 9112 section 3.2): an HTTP/1.1 request has exactly
    /// one Host, an HTTP/1.0 request at most one, and its value is `uri-host [ ":" port ]`.
    let checkHost (head: RequestHead) : Result<unit, HttpError> =
        // Counted in place: this runs for every request a server reads.
        let mutable count = 0
        let mutable value = ""

        for f in head.Headers.AsSpan() do
            if System.String.Equals(f.Name, "Host", System.StringComparison.OrdinalIgnoreCase) then
                count <- count + 1
                value <- f.Value

        match count with
        | 0 when head.Version = Http11 ->
            invalid ErrorKind.InvalidHost "an HTTP/1.1 request without Host (RFC 9112 section 3.2)"
        | 0 -> Ok()
        | 1 when isValidHost value -> Ok()
        | 1 ->
            invalid
                ErrorKind.InvalidHost
                (sprintf
                    "Host %s is not uri-host[:port] (RFC 9112 section 3.2)"
                    (value.Substring(0, min value.Length 100)))
        | many -> invalid ErrorKind.InvalidHost (sprintf "%d Host fields in one request (RFC 9112 section 3.2)" many)

    /// `readRequest`, refusing at once a Content-Length above `limits.MaxRequestBodyBytes` (413).
    let rec readRequestWithin (limits: Limits) (head: RequestHead) : Result<IncomingRequest, HttpError> =
        match readRequest head with
        | Ok r ->
            match r.Body with
            | Framing.ContentLength n when n > limits.MaxRequestBodyBytes ->
                Error(
                    HttpError.create
                        ErrorKind.BodyTooLarge
                        0L
                        (sprintf
                            "Content-Length %d is above the %d bytes a request body may have (limit MaxRequestBodyBytes)"
                            n
                            limits.MaxRequestBodyBytes)
                )
            | _ -> Ok r
        | e -> e

    /// Interprets a request head read off the wire: its Host, its body length, whether it ends
    /// the connection and whether it waits for `100 Continue`.
    and readRequest (head: RequestHead) : Result<IncomingRequest, HttpError> =
        match checkHost head with
        | Error e -> Error e
        | Ok() ->
            match Framing.requestBody head with
            | Error e -> Error e
            | Ok body ->
                Ok
                    {
                        Body = body
                        Closes = Persist.requestCloses head
                        ExpectsContinue = Continue.expects head
                    }

    /// Interprets a response head read off the wire as the answer to a request with
    /// `requestMethod`: interim, final or switching; its body length; whether it ends the
    /// connection.
    let readResponse (requestMethod: string) (head: ResponseHead) : Result<IncomingResponse, HttpError> =
        if Continue.isInterim head.Status then
            Ok
                {
                    Kind = Interim
                    Body = Framing.NoBody
                    Closes = false
                }
        else
            match Framing.responseBody requestMethod head with
            | Error e -> Error e
            | Ok body ->
                let switching =
                    head.Status = 101
                    || (requestMethod = "CONNECT" && Message.connectSucceeded head.Status)

                Ok
                    {
                        Kind = (if switching then Switching else Final)
                        Body = body
                        Closes = Persist.responseClosesWith head body
                    }
