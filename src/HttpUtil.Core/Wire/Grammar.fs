/// FParsec grammars for the lines of HTTP/1.x (RFC 9112, RFC 9110), run over text decoded as
/// Latin-1 so that a char index is a byte offset. Every failure is a typed `HttpError` carried
/// as an FParsec "other" error; `run` turns replies into `Result`s. Parsers are built once, as
/// values: limits and lenience ride in the user state.
module HttpUtil.Core.Grammar

open System
open System.Buffers
open FParsec

/// A grammar parser: user state is the settings in force.
type P<'T> = Parser<'T, ParserSettings>

/// The end-of-stream char FParsec's Peek returns; never a Latin-1 char.
let private eos = '\uffff'

/// A fatal reply carrying `error`.
let private fail (error: HttpError) : Reply<'T> =
    Reply(ReplyStatus.FatalError, otherError (box error))

/// A fatal reply carrying an `HttpError` at the stream's current index.
let errorAt (stream: CharStream<ParserSettings>) kind message : Reply<'T> =
    fail (HttpError.create kind stream.Index message)

/// A fatal reply carrying an `HttpError` at an explicit index.
let errorAtIndex (index: int64) kind message : Reply<'T> =
    fail (HttpError.create kind index message)

// The character-run parsers, built once: an inline `manySatisfy f` would allocate a closure per call.
let private tokenChars: P<string> = manySatisfy CharClass.isTchar
let private vchars: P<string> = manySatisfy CharClass.isVchar
let private valueChars: P<string> = manySatisfy CharClass.isFieldValueChar
let private hexDigits: P<string> = manySatisfy CharClass.isHex
let private skipOws: P<unit> = skipManySatisfy CharClass.isOws

let private describe (c: char) =
    if c = eos then "end of input" else HttpError.describeChar c

/// The error for input that opens with the HTTP/2 connection preface, at `offset`.
let http2PrefaceError (offset: int64) =
    HttpError.create
        ErrorKind.Http2Preface
        offset
        "this is the HTTP/2 connection preface (RFC 9113 section 3.4); the peer speaks HTTP/2, not HTTP/1.x"

/// The error for a request-line whose first char `c`, at `offset`, cannot start a method.
let methodStartError (offset: int64) (c: char) =
    HttpError.create
        ErrorKind.InvalidMethod
        offset
        (sprintf "request-line starts with %s; the method must be a token (RFC 9110 section 9.1)" (describe c))

/// Parses a line ending: CRLF, or a lone LF when `AllowBareLf` is set. A bare CR is always an
/// error; any other char is reported through `other` (which names the rule of the context).
let lineEnd (other: CharStream<ParserSettings> -> char -> Reply<unit>) : P<unit> =
    fun stream ->
        let c = stream.Peek()

        if c = '\r' then
            if stream.Peek(1) = '\n' then
                stream.Skip(2)
                Reply(())
            else
                errorAt stream ErrorKind.BareCR "CR not followed by LF; lines end with CRLF (RFC 9112 section 2.2)"
        elif c = '\n' then
            if stream.UserState.Lenience.AllowBareLf then
                stream.Skip(1)
                Reply(())
            else
                errorAt stream ErrorKind.BareLF "LF without CR; lines end with CRLF (RFC 9112 section 2.2)"
        else
            other stream c

let private isLineEnd (c: char) = c = '\r' || c = '\n'

// ---------------------------------------------------------------------------------------------
// Start lines

let private knownMethods =
    [|
        "GET"
        "POST"
        "PUT"
        "HEAD"
        "DELETE"
        "OPTIONS"
        "PATCH"
        "CONNECT"
        "TRACE"
    |]

let private knownMethodsSp = knownMethods |> Array.map (fun m -> m + " ")

/// method SP, returning the method. Common methods come back as shared literals (no allocation).
let private methodThenSp: P<string> =
    fun stream ->
        let mutable known = null
        let mutable i = 0

        while isNull known && i < knownMethods.Length do
            if stream.Skip(knownMethodsSp[i]) then
                known <- knownMethods[i]

            i <- i + 1

        if not (isNull known) then
            Reply(known)
        else
            let name = tokenChars stream
            let c = stream.Peek()

            if name.Result.Length = 0 then
                fail (methodStartError stream.Index c)
            elif c = ' ' then
                stream.Skip()
                Reply(name.Result)
            elif isLineEnd c || c = eos then
                errorAt
                    stream
                    ErrorKind.InvalidRequestLine
                    "request-line ends after the method; expected method SP request-target SP HTTP-version (RFC 9112 section 3)"
            else
                errorAt
                    stream
                    ErrorKind.InvalidMethod
                    (sprintf "%s may not appear in a method, which is a token (RFC 9110 section 9.1)" (describe c))

let private isSchemeChar (c: char) =
    (c >= 'a' && c <= 'z')
    || (c >= 'A' && c <= 'Z')
    || (c >= '0' && c <= '9')
    || c = '+'
    || c = '-'
    || c = '.'

let private hasScheme (target: string) =
    let colon = target.IndexOf(':')

    let mutable i = 1

    while i < colon && isSchemeChar target[i] do
        i <- i + 1

    colon > 0 && Char.IsAsciiLetter target[0] && i = colon

/// authority-form: uri-host ":" port with a non-empty port (RFC 9112 section 3.2.3).
let private isAuthority (target: string) =
    let colon = target.LastIndexOf(':')

    colon > 0
    && colon < target.Length - 1
    && target.AsSpan(colon + 1).IndexOfAnyExceptInRange('0', '9') < 0
    && target.AsSpan(0, colon).IndexOfAny("/?#@") < 0
    && (target[0] <> '[' || target[colon - 1] = ']')

/// Decides the form of a request-target for a method (RFC 9112 section 3.2), or says why none fits.
let classifyTarget (method: string) (target: string) : Result<TargetForm, string> =
    if method = "CONNECT" then
        if isAuthority target then
            Result.Ok Authority
        else
            Result.Error "a CONNECT request-target must be in authority-form, host:port (RFC 9112 section 3.2.3)"
    elif target = "*" then
        if method = "OPTIONS" then
            Result.Ok Asterisk
        else
            Result.Error "asterisk-form is only for OPTIONS (RFC 9112 section 3.2.4)"
    elif target[0] = '/' then
        Result.Ok Origin
    elif hasScheme target then
        Result.Ok Absolute
    else
        Result.Error
            "request-target is not in origin-form (/path), absolute-form (scheme:...), authority-form (CONNECT) or asterisk-form (RFC 9112 section 3.2)"

/// request-target SP, returning the target and its form.
let private targetThenSp (method: string) : P<struct (string * TargetForm)> =
    fun stream ->
        let start = stream.Index
        let t = vchars stream
        let c = stream.Peek()

        if t.Result.Length = 0 then
            if c = ' ' then
                errorAt
                    stream
                    ErrorKind.InvalidRequestLine
                    "two SP after the method; the request-line takes exactly one SP between its parts (RFC 9112 section 3)"
            else
                errorAt
                    stream
                    ErrorKind.InvalidTarget
                    (sprintf "%s may not start a request-target (RFC 9112 section 3.2)" (describe c))
        elif c = ' ' then
            match classifyTarget method t.Result with
            | Result.Ok form ->
                stream.Skip()
                Reply(struct (t.Result, form))
            | Result.Error why -> errorAtIndex start ErrorKind.InvalidTarget why
        elif isLineEnd c || c = eos then
            errorAt
                stream
                ErrorKind.InvalidRequestLine
                "request-line has no HTTP-version (HTTP/0.9 is not supported; RFC 9112 section 3)"
        else
            errorAt
                stream
                ErrorKind.InvalidTarget
                (sprintf "%s may not appear in a request-target (RFC 9112 section 3.2)" (describe c))

/// HTTP-version, "HTTP/1.0" or "HTTP/1.1". Other well-formed versions are UnsupportedVersion.
let version: P<HttpVersion> =
    fun stream ->
        if stream.Skip("HTTP/1.1") then
            Reply(Http11)
        elif stream.Skip("HTTP/1.0") then
            Reply(Http10)
        else
            let start = stream.Index
            let s = vchars stream
            let v = s.Result

            if
                v.Length = 8
                && v.StartsWith("HTTP/")
                && Char.IsAsciiDigit v[5]
                && v[6] = '.'
                && Char.IsAsciiDigit v[7]
            then
                errorAtIndex
                    start
                    ErrorKind.UnsupportedVersion
                    (sprintf "%s is not supported; only HTTP/1.0 and HTTP/1.1 are (RFC 9112 section 2.3)" v)
            else
                errorAtIndex
                    start
                    ErrorKind.InvalidVersion
                    (sprintf
                        "HTTP-version must be HTTP/DIGIT.DIGIT, case-sensitive (RFC 9112 section 2.3); found %s"
                        (if v.Length = 0 then
                             describe (stream.Peek())
                         else
                             "\"" + v + "\""))

let private requestLineEnd =
    lineEnd (fun stream c ->
        errorAt
            stream
            ErrorKind.InvalidRequestLine
            (sprintf "%s after the HTTP-version; the request-line ends with CRLF (RFC 9112 section 3)" (describe c)))

/// request-line = method SP request-target SP HTTP-version CRLF. The HTTP/2 preface is its own error.
let requestLine: P<struct (string * string * TargetForm * HttpVersion)> =
    fun stream ->
        let m = methodThenSp stream

        if m.Status <> ReplyStatus.Ok then
            Reply(m.Status, m.Error)
        elif m.Result = "PRI" && stream.Match("* HTTP/2.0") then
            fail (http2PrefaceError 0L)
        else
            let t = targetThenSp m.Result stream

            if t.Status <> ReplyStatus.Ok then
                Reply(t.Status, t.Error)
            else
                let v = version stream

                if v.Status <> ReplyStatus.Ok then
                    Reply(v.Status, v.Error)
                else
                    let e = requestLineEnd stream

                    if e.Status <> ReplyStatus.Ok then
                        Reply(e.Status, e.Error)
                    else
                        let struct (target, form) = t.Result
                        Reply(struct (m.Result, target, form, v.Result))

let private statusLineEnd =
    lineEnd (fun stream c ->
        errorAt
            stream
            ErrorKind.InvalidStatusLine
            (sprintf "%s in the reason-phrase (RFC 9112 section 4)" (describe c)))

/// status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ] CRLF. As Go does, the SP after the
/// status code may be missing when there is no reason.
let statusLine: P<struct (HttpVersion * int * string)> =
    fun stream ->
        let v = version stream

        if v.Status <> ReplyStatus.Ok then
            Reply(v.Status, v.Error)
        elif not (stream.Skip(' ')) then
            errorAt
                stream
                ErrorKind.InvalidStatusLine
                (sprintf "%s after the HTTP-version; expected one SP (RFC 9112 section 4)" (describe (stream.Peek())))
        else
            let d0 = stream.Peek()
            let d1 = stream.Peek(1)
            let d2 = stream.Peek(2)

            if not (Char.IsAsciiDigit d0 && Char.IsAsciiDigit d1 && Char.IsAsciiDigit d2) then
                errorAt stream ErrorKind.InvalidStatusLine "status-code must be three digits (RFC 9112 section 4)"
            else
                let code = (int d0 - 48) * 100 + (int d1 - 48) * 10 + (int d2 - 48)

                if code < 100 then
                    errorAt
                        stream
                        ErrorKind.InvalidStatusLine
                        (sprintf "status-code %03d is below 100 (RFC 9110 section 15)" code)
                else
                    stream.Skip(3)
                    let c = stream.Peek()

                    if c <> ' ' && not (isLineEnd c) then
                        errorAt
                            stream
                            ErrorKind.InvalidStatusLine
                            (sprintf "%s after the status-code; expected SP (RFC 9112 section 4)" (describe c))
                    else
                        let reason =
                            if c = ' ' then
                                stream.Skip()
                                (valueChars stream).Result
                            else
                                ""

                        let e = statusLineEnd stream

                        if e.Status <> ReplyStatus.Ok then
                            Reply(e.Status, e.Error)
                        else
                            Reply(struct (v.Result, code, reason))

// ---------------------------------------------------------------------------------------------
// Field sections

/// Where a field section stands: obs-fold rules and the limit on its count differ.
type FieldContext =
    /// A request head: obs-fold is always rejected.
    | RequestFields
    /// A response head: obs-fold is replaced by SP when `AllowObsFoldInResponses` is set.
    | ResponseFields
    /// A chunked trailer section: as a request or response, by `isRequest`.
    | TrailerFields of isRequest: bool

let private ows = [| ' '; '\t' |]

/// The end of a field value; the caller has checked that a CR or LF is next.
let private valueLineEnd =
    lineEnd (fun stream c ->
        errorAt stream ErrorKind.InvalidFieldValue (sprintf "%s in a field value (RFC 9110 section 5.5)" (describe c)))

let private foldEnd =
    lineEnd (fun stream c ->
        errorAt
            stream
            ErrorKind.InvalidFieldValue
            (sprintf "%s in a folded field value (RFC 9110 section 5.5)" (describe c)))

/// field-line = field-name ":" OWS field-value OWS CRLF; returns the field with its value trimmed.
let fieldLine: P<HeaderField> =
    fun stream ->
        let name = tokenChars stream
        let n = name.Result
        let c = stream.Peek()

        if n.Length = 0 then
            errorAt
                stream
                ErrorKind.InvalidFieldName
                (sprintf "%s may not start a field name, which is a token (RFC 9110 section 5.1)" (describe c))
        elif c = ':' then
            stream.Skip()
            skipOws stream |> ignore
            let value = valueChars stream
            let next = stream.Peek()

            if not (isLineEnd next) then
                errorAt
                    stream
                    ErrorKind.InvalidFieldValue
                    (sprintf
                        "%s in the value of field %s; values hold no control characters but HTAB (RFC 9110 section 5.5)"
                        (describe next)
                        n)
            else
                let e = valueLineEnd stream

                if e.Status <> ReplyStatus.Ok then
                    Reply(e.Status, e.Error)
                else
                    Reply(
                        {
                            Name = n
                            Value = value.Result.TrimEnd(ows)
                        }
                    )
        elif CharClass.isOws c then
            errorAt
                stream
                ErrorKind.WhitespaceBeforeColon
                (sprintf "whitespace between field name %s and its colon must be rejected (RFC 9112 section 5.1)" n)
        elif isLineEnd c || c = eos then
            errorAt stream ErrorKind.InvalidFieldName (sprintf "field line %s has no colon (RFC 9112 section 5)" n)
        else
            errorAt
                stream
                ErrorKind.InvalidFieldName
                (sprintf "%s may not appear in a field name, which is a token (RFC 9110 section 5.1)" (describe c))

let private foldAllowed (ctx: FieldContext) (settings: ParserSettings) =
    match ctx with
    | ResponseFields
    | TrailerFields false -> settings.Lenience.AllowObsFoldInResponses
    | RequestFields
    | TrailerFields true -> false

let private finalLineEnd =
    lineEnd (fun stream c ->
        errorAt
            stream
            ErrorKind.InvalidFieldName
            (sprintf "%s where a field line or the empty line was expected (RFC 9112 section 2.1)" (describe c)))

/// A field section up to and including its terminating empty line, at most `maxCount` fields.
let fields (ctx: FieldContext) (maxCount: int) : P<Headers> =
    fun stream ->
        let pool = ArrayPool<HeaderField>.Shared
        let mutable buffer = pool.Rent 16
        let mutable count = 0
        let mutable result = Unchecked.defaultof<Reply<Headers>>
        let mutable fin = false

        while not fin do
            let c = stream.Peek()

            if isLineEnd c then
                let e = finalLineEnd stream
                fin <- true

                result <-
                    if e.Status <> ReplyStatus.Ok then
                        Reply(e.Status, e.Error)
                    else
                        Reply(Headers.Own(buffer.AsSpan(0, count).ToArray()))
            elif CharClass.isOws c then
                fin <- true

                if count = 0 then
                    result <-
                        errorAt
                            stream
                            ErrorKind.ObsFold
                            "whitespace before the first field line must be rejected (RFC 9112 section 2.2)"
                elif not (foldAllowed ctx stream.UserState) then
                    result <-
                        errorAt
                            stream
                            ErrorKind.ObsFold
                            (sprintf
                                "obs-fold (a line starting with whitespace) continues field %s; it is not allowed here (RFC 9112 section 5.2)"
                                buffer[count - 1].Name)
                else
                    skipOws stream |> ignore
                    let more = valueChars stream
                    let e = foldEnd stream

                    if e.Status <> ReplyStatus.Ok then
                        result <- Reply(e.Status, e.Error)
                    else
                        fin <- false
                        let prev = buffer[count - 1]
                        let cont = more.Result.TrimEnd(ows)

                        let joined =
                            if cont.Length = 0 then prev.Value
                            elif prev.Value.Length = 0 then cont
                            else prev.Value + " " + cont

                        buffer[count - 1] <- { prev with Value = joined }
            elif count >= maxCount then
                fin <- true

                result <-
                    errorAt
                        stream
                        ErrorKind.TooManyHeaders
                        (sprintf "more than %d field lines (limit MaxHeaderCount)" maxCount)
            else
                let f = fieldLine stream

                if f.Status <> ReplyStatus.Ok then
                    fin <- true
                    result <- Reply(f.Status, f.Error)
                else
                    if count = buffer.Length then
                        let bigger = pool.Rent(buffer.Length * 2)
                        buffer.AsSpan(0, count).CopyTo(bigger.AsSpan())
                        pool.Return(buffer, true)
                        buffer <- bigger

                    buffer[count] <- f.Result
                    count <- count + 1

        pool.Return(buffer, true)
        result

/// A start line, then a field section and its empty line, combined by `build`.
let private head (startLine: P<'Line>) (ctx: FieldContext) (build: 'Line -> Headers -> 'Head) : P<'Head> =
    fun stream ->
        let line = startLine stream

        if line.Status <> ReplyStatus.Ok then
            Reply(line.Status, line.Error)
        else
            let h = fields ctx stream.UserState.Limits.MaxHeaderCount stream

            if h.Status <> ReplyStatus.Ok then
                Reply(h.Status, h.Error)
            else
                Reply(build line.Result h.Result)

/// A whole request head: request-line, fields, empty line.
let requestHead: P<RequestHead> =
    head requestLine RequestFields (fun (struct (m, t, form, v)) h ->
        {
            Method = m
            Target = t
            Form = form
            Version = v
            Headers = h
        })

/// A whole response head: status-line, fields, empty line.
let responseHead: P<ResponseHead> =
    head statusLine ResponseFields (fun (struct (v, s, r)) h ->
        {
            Version = v
            Status = s
            Reason = r
            Headers = h
        })

// ---------------------------------------------------------------------------------------------
// Chunk-size lines (RFC 9112 section 7.1)

let private quotedString: P<unit> =
    fun stream ->
        // DQUOTE *( qdtext / quoted-pair ) DQUOTE
        stream.Skip() // opening quote
        let mutable fin = false
        let mutable result = Reply(())

        while not fin do
            let c = stream.Peek()

            if c = '"' then
                stream.Skip()
                fin <- true
            elif c = '\\' then
                let q = stream.Peek(1)

                if q = '\t' || (q >= ' ' && q <> '\x7f' && q <= '\xff') then
                    stream.Skip(2)
                else
                    fin <- true

                    result <-
                        errorAt
                            stream
                            ErrorKind.InvalidChunkExtension
                            "invalid quoted-pair in a chunk extension (RFC 9110 section 5.6.4)"
            elif c = '\t' || (c >= ' ' && c <> '\x7f' && c <= '\xff') then
                stream.Skip()
            else
                fin <- true

                result <-
                    errorAt
                        stream
                        ErrorKind.InvalidChunkExtension
                        (sprintf "%s inside a quoted chunk extension value (RFC 9110 section 5.6.4)" (describe c))

        result

/// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ); validated and skipped.
let private chunkExtensions: P<unit> =
    fun stream ->
        let mutable result = Reply(())
        let mutable fin = false

        while not fin do
            let before = stream.Index
            skipOws stream |> ignore

            if stream.Peek() <> ';' then
                fin <- true

                if stream.Index <> before then
                    result <-
                        errorAt
                            stream
                            ErrorKind.InvalidChunkSize
                            "whitespace after a chunk-size must be followed by ';' and an extension (RFC 9112 section 7.1)"
            else
                stream.Skip()
                skipOws stream |> ignore
                let name = tokenChars stream

                if name.Result.Length = 0 then
                    fin <- true

                    result <-
                        errorAt
                            stream
                            ErrorKind.InvalidChunkExtension
                            "a chunk extension needs a token name after ';' (RFC 9112 section 7.1.1)"
                else
                    skipOws stream |> ignore

                    if stream.Skip('=') then
                        skipOws stream |> ignore

                        if stream.Peek() = '"' then
                            let q = quotedString stream

                            if q.Status <> ReplyStatus.Ok then
                                fin <- true
                                result <- q
                        else
                            let v = tokenChars stream

                            if v.Result.Length = 0 then
                                fin <- true

                                result <-
                                    errorAt
                                        stream
                                        ErrorKind.InvalidChunkExtension
                                        "a chunk extension value must be a token or a quoted-string (RFC 9112 section 7.1.1)"

        result

let private chunkLineEnd =
    lineEnd (fun stream c ->
        errorAt
            stream
            ErrorKind.InvalidChunkSize
            (sprintf "%s in a chunk-size line; expected chunk-ext or CRLF (RFC 9112 section 7.1)" (describe c)))

/// chunk-size [ chunk-ext ] CRLF, returning the size. Guards overflow: at most
/// `MaxChunkSizeDigits` hex digits, and the value must fit an Int64.
let chunkSizeLine: P<int64> =
    fun stream ->
        let start = stream.Index
        let digits = hexDigits stream
        let d = digits.Result
        let maxDigits = stream.UserState.Limits.MaxChunkSizeDigits

        if d.Length = 0 then
            errorAt
                stream
                ErrorKind.InvalidChunkSize
                (sprintf
                    "chunk-size must start with a hex digit, found %s (RFC 9112 section 7.1)"
                    (describe (stream.Peek())))
        elif d.Length > maxDigits then
            errorAtIndex
                start
                ErrorKind.ChunkSizeTooLarge
                (sprintf
                    "chunk-size has %d hex digits, more than the limit of %d (MaxChunkSizeDigits)"
                    d.Length
                    maxDigits)
        else
            let trimmed = d.AsSpan().TrimStart('0')

            if trimmed.Length > 16 || (trimmed.Length = 16 && trimmed[0] > '7') then
                errorAtIndex
                    start
                    ErrorKind.ChunkSizeTooLarge
                    (sprintf "chunk-size %s does not fit a signed 64-bit length" d)
            else
                let size = Int64.Parse(d, Globalization.NumberStyles.AllowHexSpecifier)
                let ext = chunkExtensions stream

                if ext.Status <> ReplyStatus.Ok then
                    Reply(ext.Status, ext.Error)
                else
                    let e = chunkLineEnd stream

                    if e.Status <> ReplyStatus.Ok then
                        Reply(e.Status, e.Error)
                    else
                        Reply(size)

// ---------------------------------------------------------------------------------------------
// Running

let private toHttpError (fallbackIndex: int64) (errors: ErrorMessageList) =
    let rec find (l: ErrorMessageList) =
        if obj.ReferenceEquals(l, null) then
            None
        else
            match l.Head with
            | :? ErrorMessage.Other as o ->
                match o.Data with
                | :? HttpError as e -> Some e
                | _ -> find l.Tail
            | _ -> find l.Tail

    match find errors with
    | Some e -> e
    | None -> HttpError.create ErrorKind.InvalidHead fallbackIndex "malformed input"

/// Runs `p` over all of `text` (which must be consumed entirely), offsets relative to `text`.
let run (p: P<'T>) (settings: ParserSettings) (text: string) : Result<'T, HttpError> =
    use stream = new CharStream<ParserSettings>(text, 0, text.Length)
    stream.UserState <- settings
    let reply = p stream

    if reply.Status = ReplyStatus.Ok then
        if stream.IsEndOfStream then
            Result.Ok reply.Result
        else
            Result.Error(
                HttpError.create ErrorKind.InvalidHead stream.Index "unexpected bytes after the end of the section"
            )
    else
        Result.Error(toHttpError stream.Index reply.Error)
