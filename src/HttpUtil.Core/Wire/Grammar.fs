/// The grammar of HTTP/1.x heads and chunk-size lines (RFC 9112, RFC 9110) as FParsec parsers,
/// named and composed as the ABNF is. It runs over text decoded as Latin-1, so a char index is a
/// byte offset. Every failure is a typed `HttpError` (kind, offset, rule) carried as a fatal
/// FParsec error; `run` turns replies into `Result`s. Parsers are values built once; limits and
/// lenience ride in the user state. Internal: the public entry points are in `Parser`.
module internal HttpUtil.Core.Grammar

open System
open System.Buffers
open FParsec

/// A grammar parser; the user state is the settings in force.
type P<'T> = Parser<'T, ParserSettings>

// ---------------------------------------------------------------------------------------------
// Leaves: typed failures, a position, the next char. FParsec's own primitives do the rest.

/// The end-of-stream char FParsec's Peek returns; never a Latin-1 char.
let private eos = '\uffff'

let private describe (c: char) =
    if c = eos then "end of input" else HttpError.describeChar c

let private fatal (error: HttpError) : Reply<'T> =
    Reply(ReplyStatus.FatalError, otherError (box error))

/// Fails with an error of `kind` at the current position; `message` gets the next char described.
let private failOn (kind: ErrorKind) (message: string -> string) : P<'T> =
    fun stream -> fatal (HttpError.create kind stream.Index (message (describe (stream.Peek()))))

/// Fails with an error at the current position whose kind and message depend on the next char.
let private failBy (decide: char -> struct (ErrorKind * string)) : P<'T> =
    fun stream ->
        let struct (kind, message) = decide (stream.Peek())
        fatal (HttpError.create kind stream.Index message)

/// The current position (a byte offset in the section).
let private position: P<int64> = fun stream -> Reply(stream.Index)

/// `p`, then `check` on its result and the settings: a value, or a typed error.
let inline private checkedWith
    ([<InlineIfLambda>] check: ParserSettings -> 'T -> Result<'U, HttpError>)
    (p: P<'T>)
    : P<'U> =
    fun stream ->
        let r = p stream

        if r.Status <> ReplyStatus.Ok then
            Reply(r.Status, r.Error)
        else
            match check stream.UserState r.Result with
            | Result.Ok u -> Reply(u)
            | Result.Error e -> fatal e

let private isLineEnd (c: char) = c = '\r' || c = '\n'

// ---------------------------------------------------------------------------------------------
// Sequencing for the hot rules. FParsec's `pipe2`..`pipe4`, `.>>`, `>>.` and `<|>` are generic
// closures whose code is shared by every instantiation over reference types; on the rules that
// run once per line (request-line, status-line, field-line) their layers cost more than the
// parsing itself. These inline forms mean the same (without FParsec's merging of error messages,
// which our typed errors do not use) and compile each composition into a closure of its own.

/// `pipe2`: `p` then `q`, combined by `f`.
let inline private seq2 ([<InlineIfLambda>] f: 'a -> 'b -> 'r) (p: P<'a>) (q: P<'b>) : P<'r> =
    fun stream ->
        let a = p stream

        if a.Status <> ReplyStatus.Ok then
            Reply(a.Status, a.Error)
        else
            let b = q stream

            if b.Status <> ReplyStatus.Ok then
                Reply(b.Status, b.Error)
            else
                Reply(f a.Result b.Result)

/// `pipe3`: `p`, `q`, `r` in turn, combined by `f`.
let inline private seq3 ([<InlineIfLambda>] f: 'a -> 'b -> 'c -> 'r) (p: P<'a>) (q: P<'b>) (r: P<'c>) : P<'r> =
    seq2 (fun a (struct (b, c)) -> f a b c) p (seq2 (fun b c -> struct (b, c)) q r)

/// `pipe4`: `p`, `q`, `r`, `t` in turn, combined by `f`.
let inline private seq4
    ([<InlineIfLambda>] f: 'a -> 'b -> 'c -> 'd -> 'r)
    (p: P<'a>)
    (q: P<'b>)
    (r: P<'c>)
    (t: P<'d>)
    : P<'r> =
    seq2
        (fun (struct (a, b)) (struct (c, d)) -> f a b c d)
        (seq2 (fun a b -> struct (a, b)) p q)
        (seq2 (fun c d -> struct (c, d)) r t)

/// `p .>> q`: `p`, then `q` whose result is dropped.
let inline private before (p: P<'a>) (q: P<unit>) : P<'a> = seq2 (fun a () -> a) p q

/// `p >>. q`: `p` whose result is dropped, then `q`.
let inline private after (p: P<unit>) (q: P<'b>) : P<'b> = seq2 (fun () b -> b) p q

/// `p <|> q`: `q` when `p` fails without consuming input.
let inline private orElse (p: P<'a>) (q: P<'a>) : P<'a> =
    fun stream ->
        let tag = stream.StateTag
        let a = p stream

        if a.Status = ReplyStatus.Error && tag = stream.StateTag then
            q stream
        else
            a

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

// ---------------------------------------------------------------------------------------------
// Character runs (RFC 9110 section 5.6.2, RFC 9112 section 2.2). Built once as values: an
// inline `manySatisfy f` would allocate a closure per call.

// token = 1*tchar
let private tokenChars: P<string> = manySatisfy CharClass.isTchar
// VCHAR runs (request-target, HTTP-version)
let private vchars: P<string> = manySatisfy CharClass.isVchar
// field-value characters: VCHAR, obs-text, SP, HTAB
let private valueChars: P<string> = manySatisfy CharClass.isFieldValueChar
let private hexDigits: P<string> = manySatisfy CharClass.isHex
// OWS = *( SP / HTAB )
let private ows: P<unit> = skipManySatisfy CharClass.isOws

/// `p` (a char run), failing without consuming when it matched nothing: 1*( ... ). FParsec's
/// `many1Satisfy` does the same through its two-predicate loop, measured slower here.
let private nonEmpty (p: P<string>) : P<string> =
    fun stream ->
        let r = p stream

        if r.Status = ReplyStatus.Ok && r.Result.Length = 0 then
            Reply(ReplyStatus.Error, NoErrorMessages)
        else
            r

let private sp: P<unit> = skipChar ' '

/// CRLF, or a bare LF when `AllowBareLf` is set (RFC 9112 section 2.2). A CR not followed by LF is
/// always an error; anything else fails without consuming, for the caller's alternative. FParsec's
/// newline parsers also take a bare CR or LF, so this leaf is our own.
let private crlf: P<unit> =
    fun stream ->
        match stream.Peek() with
        | '\r' when stream.Peek(1) = '\n' ->
            stream.Skip(2)
            Reply(())
        | '\r' ->
            fatal (
                HttpError.create
                    ErrorKind.BareCR
                    stream.Index
                    "CR not followed by LF; lines end with CRLF (RFC 9112 section 2.2)"
            )
        | '\n' when stream.UserState.Lenience.AllowBareLf ->
            stream.Skip(1)
            Reply(())
        | '\n' ->
            fatal (
                HttpError.create
                    ErrorKind.BareLF
                    stream.Index
                    "LF without CR; lines end with CRLF (RFC 9112 section 2.2)"
            )
        | _ -> Reply(ReplyStatus.Error, NoErrorMessages)

/// CRLF, or the error `orElse` names for whatever stands there instead: `crlf <|> orElse`, fused
/// into one parser (the line end is on every line's hot path).
let private lineEndOr (orElse: P<unit>) : P<unit> =
    fun stream ->
        let r = crlf stream

        if r.Status = ReplyStatus.Error then orElse stream else r

/// The char `c`, or the error `orElse` names for whatever stands there instead: `skipChar c <|>
/// orElse`, fused into one parser.
let private charOr (c: char) (orElse: P<unit>) : P<unit> =
    fun stream -> if stream.Skip(c) then Reply(()) else orElse stream

// ---------------------------------------------------------------------------------------------
// request-line = method SP request-target SP HTTP-version CRLF           (RFC 9112 section 3)

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

/// A common method followed by SP, returned as a shared literal (no allocation).
let private knownMethodSp: P<string> =
    // `choice` over these, as alternatives that stop at the first match (FParsec's `choice`
    // walks its parsers through an enumerator allocated per call).
    knownMethods
    |> Array.map (fun m -> stringReturn (m + " ") m)
    |> Array.reduceBack (fun p q -> orElse p q)

let private afterMethod =
    failBy (fun c ->
        if isLineEnd c || c = eos then
            struct (ErrorKind.InvalidRequestLine,
                    "request-line ends after the method; expected method SP request-target SP HTTP-version (RFC 9112 section 3)")
        else
            struct (ErrorKind.InvalidMethod,
                    sprintf "%s may not appear in a method, which is a token (RFC 9110 section 9.1)" (describe c)))

// method = token
let private methodToken: P<string> =
    nonEmpty tokenChars
    <|> (fun stream -> fatal (methodStartError stream.Index (stream.Peek())))

// method SP
let private methodSp: P<string> =
    orElse knownMethodSp (before methodToken (charOr ' ' afterMethod))

// request-target = origin-form / absolute-form / authority-form / asterisk-form, as VCHARs
let private requestTarget: P<string> =
    nonEmpty vchars
    <|> failBy (fun c ->
        if c = ' ' then
            struct (ErrorKind.InvalidRequestLine,
                    "two SP after the method; the request-line takes exactly one SP between its parts (RFC 9112 section 3)")
        else
            struct (ErrorKind.InvalidTarget,
                    sprintf "%s may not start a request-target (RFC 9112 section 3.2)" (describe c)))

let private afterTarget =
    failBy (fun c ->
        if isLineEnd c || c = eos then
            struct (ErrorKind.InvalidRequestLine,
                    "request-line has no HTTP-version (HTTP/0.9 is not supported; RFC 9112 section 3)")
        else
            struct (ErrorKind.InvalidTarget,
                    sprintf "%s may not appear in a request-target (RFC 9112 section 3.2)" (describe c)))

/// method SP request-target SP, the target's form decided by its method (at the target's offset).
let private methodAndTarget: P<struct (string * string * TargetForm)> =
    seq3 (fun m at t -> struct (m, at, t)) methodSp position (before requestTarget (charOr ' ' afterTarget))
    |> checkedWith (fun _ (struct (m, at, t)) ->
        match Message.classifyTarget m t with
        | Result.Ok form -> Result.Ok(struct (m, t, form))
        | Result.Error why -> Result.Error(HttpError.create ErrorKind.InvalidTarget at why))

/// A well-formed HTTP-version other than HTTP/1.0 and 1.1 is unsupported; anything else invalid.
let private versionError: P<Http1Version> =
    pipe3 position vchars (fun stream -> Reply(stream.Peek())) (fun at v next -> struct (at, v, next))
    |> checkedWith (fun _ (struct (at, v, next)) ->
        if
            v.Length = 8
            && v.StartsWith("HTTP/")
            && Char.IsAsciiDigit v[5]
            && v[6] = '.'
            && Char.IsAsciiDigit v[7]
        then
            Result.Error(
                HttpError.create
                    ErrorKind.UnsupportedVersion
                    at
                    (sprintf "%s is not supported; only HTTP/1.0 and HTTP/1.1 are (RFC 9112 section 2.3)" v)
            )
        else
            Result.Error(
                HttpError.create
                    ErrorKind.InvalidVersion
                    at
                    (sprintf
                        "HTTP-version must be HTTP/DIGIT.DIGIT, case-sensitive (RFC 9112 section 2.3); found %s"
                        (if v.Length = 0 then describe next else "\"" + v + "\""))
            ))

// HTTP-version = HTTP-name "/" DIGIT "." DIGIT                             (RFC 9112 section 2.3)
let private httpVersion: P<Http1Version> =
    orElse (orElse (stringReturn "HTTP/1.1" Http11) (stringReturn "HTTP/1.0" Http10)) versionError

/// A response's HTTP-version: as `httpVersion`, and a higher minor version of HTTP/1 (`HTTP/1.2`...) read
/// as HTTP/1.1: a recipient SHOULD process it as the highest minor version it implements (RFC 9112 section
/// 2.3). Requests keep the strict rule (a 505 hint), as a server decides what it answers.
let private responseVersion: P<Http1Version> =
    let higherMinor: P<Http1Version> =
        attempt (skipString "HTTP/1." >>. satisfy Char.IsAsciiDigit >>% Http11)

    orElse (orElse (orElse (stringReturn "HTTP/1.1" Http11) (stringReturn "HTTP/1.0" Http10)) higherMinor) versionError

let private requestLineEnd =
    lineEndOr (
        failOn
            ErrorKind.InvalidRequestLine
            (sprintf "%s after the HTTP-version; the request-line ends with CRLF (RFC 9112 section 3)")
    )

// The HTTP/2 preface reads like a request-line for method PRI; it gets an error of its own.
let private http2Preface: P<struct (string * string * TargetForm * Http1Version)> =
    skipString "PRI * HTTP/2.0" >>. (fun _ -> fatal (http2PrefaceError 0L))

/// request-line, as (method, target, form, version).
let requestLine: P<struct (string * string * TargetForm * Http1Version)> =
    orElse
        http2Preface
        (seq2
            (fun (struct (m, t, form)) v -> struct (m, t, form, v))
            methodAndTarget
            (before httpVersion requestLineEnd))

// ---------------------------------------------------------------------------------------------
// status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF    (RFC 9112 section 4)
// As Go does, the SP after the status code may be missing when there is no reason.

let private afterVersion =
    failOn ErrorKind.InvalidStatusLine (sprintf "%s after the HTTP-version; expected one SP (RFC 9112 section 4)")

// status-code = 3DIGIT (100 or more: checked by the status-line, at the code's offset)
let private statusCode: P<int> =
    orElse
        (attempt (
            seq3
                (fun (a: char) (b: char) (c: char) -> (int a - 48) * 100 + (int b - 48) * 10 + (int c - 48))
                digit
                digit
                digit
        ))
        (failOn ErrorKind.InvalidStatusLine (fun _ -> "status-code must be three digits (RFC 9112 section 4)"))

// reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
let private reasonPhrase: P<string> =
    orElse
        (orElse (after sp valueChars) (followedBy (satisfy isLineEnd) >>% ""))
        (failOn ErrorKind.InvalidStatusLine (sprintf "%s after the status-code; expected SP (RFC 9112 section 4)"))

let private statusLineEnd =
    lineEndOr (failOn ErrorKind.InvalidStatusLine (sprintf "%s in the reason-phrase (RFC 9112 section 4)"))

/// status-line, as (version, status, reason).
let statusLine: P<struct (Http1Version * int * string)> =
    seq4
        (fun v at code reason -> struct (v, at, code, reason))
        (before responseVersion (charOr ' ' afterVersion))
        position
        statusCode
        (before reasonPhrase statusLineEnd)
    |> checkedWith (fun _ (struct (v, at, code, reason)) ->
        if code < 100 then
            Result.Error(
                HttpError.create
                    ErrorKind.InvalidStatusLine
                    at
                    (sprintf "status-code %03d is below 100 (RFC 9110 section 15)" code)
            )
        else
            Result.Ok(struct (v, code, reason)))

// ---------------------------------------------------------------------------------------------
// Field sections: *( field-line CRLF ) CRLF                                (RFC 9112 section 5)

/// Where a field section stands: obs-fold rules differ.
type FieldContext =
    /// A request head: obs-fold is always rejected.
    | RequestFields
    /// A response head: obs-fold is replaced by SP when `AllowObsFoldInResponses` is set.
    | ResponseFields
    /// A chunked trailer section: as a request or response, by `isRequest`.
    | TrailerFields of isRequest: bool

/// One line of a field section: a field, or an obs-fold continuing the previous one.
[<Struct>]
type private FieldPart =
    | Line of Field: HeaderField
    | Fold of Continuation: string

let private owsChars = [| ' '; '\t' |]

let private afterName =
    failBy (fun c ->
        if CharClass.isOws c then
            struct (ErrorKind.WhitespaceBeforeColon,
                    "whitespace between a field name and its colon must be rejected (RFC 9112 section 5.1)")
        elif isLineEnd c || c = eos then
            struct (ErrorKind.InvalidFieldName, "a field line has no colon (RFC 9112 section 5)")
        else
            struct (ErrorKind.InvalidFieldName,
                    sprintf "%s may not appear in a field name, which is a token (RFC 9110 section 5.1)" (describe c)))

// field-name = token
let private fieldName: P<string> = nonEmpty tokenChars

/// What stands where a field line should start, when it is neither a field nor an obs-fold.
let private badFieldStart: P<FieldPart> =
    failOn ErrorKind.InvalidFieldName (sprintf "%s may not start a field name, which is a token (RFC 9110 section 5.1)")

let private valueEnd =
    lineEndOr (
        failOn
            ErrorKind.InvalidFieldValue
            (sprintf "%s in a field value; values hold no control characters but HTAB (RFC 9110 section 5.5)")
    )

// field-line = field-name ":" OWS field-value OWS
let private fieldLine: P<FieldPart> =
    seq3
        (fun (n: string) (v: string) () ->
            Line
                {
                    Name = n
                    Value = v.TrimEnd(owsChars)
                })
        fieldName
        (after (charOr ':' afterName) (after ows valueChars))
        valueEnd

let private foldAllowed (ctx: FieldContext) (settings: ParserSettings) =
    match ctx with
    | ResponseFields
    | TrailerFields false -> settings.Lenience.AllowObsFoldInResponses
    | RequestFields
    | TrailerFields true -> false

// obs-fold = OWS CRLF RWS: a line that starts with whitespace continues the previous field
let private obsFold (ctx: FieldContext) : P<FieldPart> =
    let refuse =
        failOn ErrorKind.ObsFold (fun _ ->
            "obs-fold (a line starting with whitespace) continues a field; it is not allowed here (RFC 9112 section 5.2)")

    let allowed: P<unit> =
        fun stream ->
            if foldAllowed ctx stream.UserState then
                Reply(())
            else
                refuse stream

    followedBy (satisfy CharClass.isOws) >>. allowed >>. ows >>. valueChars
    .>> lineEndOr (failOn ErrorKind.InvalidFieldValue (sprintf "%s in a folded field value (RFC 9110 section 5.5)"))
    |>> fun v -> Fold(v.TrimEnd(owsChars))

let private firstLineFold: P<FieldPart> =
    followedBy (satisfy CharClass.isOws)
    >>. failOn ErrorKind.ObsFold (fun _ ->
        "whitespace before the first field line must be rejected (RFC 9112 section 2.2)")

/// Collects the fields of one section. One buffer per thread, reused: a parse runs to its end
/// on the thread that started it; the fields are copied out once at the end.
[<AllowNullLiteral>]
type private FieldBuffer() =
    let mutable items: HeaderField[] = Array.zeroCreate 16
    let mutable count = 0

    member this.Reset() =
        count <- 0
        this

    member this.Add(part: FieldPart) =
        match part with
        | Line f ->
            if count = items.Length then
                Array.Resize(&items, items.Length * 2)

            items[count] <- f
            count <- count + 1
        | Fold more ->
            let prev = items[count - 1]

            let joined =
                if more.Length = 0 then prev.Value
                elif prev.Value.Length = 0 then more
                else prev.Value + " " + more

            items[count - 1] <- { prev with Value = joined }

        this

    member _.ToHeaders() =
        if count = 0 then
            Headers.Empty
        else
            Headers.Own(items.AsSpan(0, count).ToArray())

type private FieldBuffers =
    [<ThreadStatic; DefaultValue>]
    static val mutable private current: FieldBuffer

    /// This thread's buffer, emptied.
    static member Rent() =
        if isNull FieldBuffers.current then
            FieldBuffers.current <- FieldBuffer()

        FieldBuffers.current.Reset()

/// A field section up to and including its empty line. The number of fields and the section's
/// size are bounded by the scan that finds the section's end (`Parser.scanSection`), before the
/// grammar runs, so they are not counted again here.
let private fieldSection (ctx: FieldContext) : P<Headers> =
    Inline.ManyTill(
        (fun part -> FieldBuffers.Rent().Add(part)),
        (fun (b: FieldBuffer) part -> b.Add(part)),
        (fun b () -> b.ToHeaders()),
        orElse (orElse fieldLine (obsFold ctx)) badFieldStart,
        crlf,
        orElse (orElse fieldLine firstLineFold) badFieldStart,
        (fun () -> Headers.Empty)
    )

let private requestFields = fieldSection RequestFields
let private responseFields = fieldSection ResponseFields
let private requestTrailers = fieldSection (TrailerFields true)
let private responseTrailers = fieldSection (TrailerFields false)

/// A trailer section (the field lines after a last-chunk) and its empty line.
let trailerSection (isRequest: bool) : P<Headers> =
    if isRequest then requestTrailers else responseTrailers

// ---------------------------------------------------------------------------------------------
// Heads: start-line *( field-line CRLF ) CRLF                               (RFC 9112 section 2.1)

/// A whole request head: request-line, fields, empty line.
let requestHead: P<RequestHead> =
    seq2
        (fun (struct (m, t, form, v)) h ->
            {
                Method = m
                Target = t
                Form = form
                Version = v
                Headers = h
            })
        requestLine
        requestFields

/// A whole response head: status-line, fields, empty line.
let responseHead: P<ResponseHead> =
    seq2
        (fun (struct (v, s, r)) h ->
            {
                Version = v
                Status = s
                Reason = r
                Headers = h
            })
        statusLine
        responseFields

// ---------------------------------------------------------------------------------------------
// chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF                     (RFC 9112 section 7.1)
// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )

let private isQdtext (c: char) =
    c = '\t' || (c >= ' ' && c <> '"' && c <> '\\' && c <> '\x7f' && c <= '\xff')

let private isQuotable (c: char) =
    c = '\t' || (c >= ' ' && c <> '\x7f' && c <= '\xff')

// quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
let private quotedPair: P<unit> =
    followedBy (skipChar '\\')
    >>. (attempt (skipChar '\\' >>. skipSatisfy isQuotable)
         <|> failOn ErrorKind.InvalidChunkExtension (fun _ ->
             "invalid quoted-pair in a chunk extension (RFC 9110 section 5.6.4)"))

// quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
let private quotedString: P<unit> =
    skipChar '"' >>. skipMany (skipMany1Satisfy isQdtext <|> quotedPair)
    .>> (skipChar '"'
         <|> failOn
                 ErrorKind.InvalidChunkExtension
                 (sprintf "%s inside a quoted chunk extension value (RFC 9110 section 5.6.4)"))

// chunk-ext-val = token / quoted-string
let private extValue: P<unit> =
    quotedString
    <|> (nonEmpty tokenChars >>% ())
    <|> failOn ErrorKind.InvalidChunkExtension (fun _ ->
        "a chunk extension value must be a token or a quoted-string (RFC 9112 section 7.1.1)")

// chunk-ext-name = token
let private extName: P<unit> =
    (nonEmpty tokenChars >>% ())
    <|> failOn ErrorKind.InvalidChunkExtension (fun _ ->
        "a chunk extension needs a token name after ';' (RFC 9112 section 7.1.1)")

/// BWS ";" : whitespace after the size (or a previous extension) must lead to another extension.
let private extStart: P<unit> =
    (ows >>? skipChar ';')
    <|> (skipMany1Satisfy CharClass.isOws
         >>. failOn ErrorKind.InvalidChunkSize (fun _ ->
             "whitespace after a chunk-size must be followed by ';' and an extension (RFC 9112 section 7.1)"))

let private chunkExt: P<unit> =
    skipMany (
        extStart
        >>. ows
        >>. extName
        >>. ows
        >>. optional (skipChar '=' >>. ows >>. extValue)
    )

// chunk-size = 1*HEXDIG, at most MaxChunkSizeDigits digits and within an Int64
let private chunkSize: P<int64> =
    pipe2 position hexDigits (fun at d -> struct (at, d))
    |> checkedWith (fun settings (struct (at, d)) ->
        let maxDigits = settings.Limits.MaxChunkSizeDigits
        let trimmed = d.AsSpan().TrimStart('0')

        if d.Length > maxDigits then
            Result.Error(
                HttpError.create
                    ErrorKind.ChunkSizeTooLarge
                    at
                    (sprintf
                        "chunk-size has %d hex digits, more than the limit of %d (MaxChunkSizeDigits)"
                        d.Length
                        maxDigits)
            )
        elif trimmed.Length > 16 || (trimmed.Length = 16 && trimmed[0] > '7') then
            Result.Error(
                HttpError.create
                    ErrorKind.ChunkSizeTooLarge
                    at
                    (sprintf "chunk-size %s does not fit a signed 64-bit length" d)
            )
        else
            Result.Ok(Int64.Parse(d, Globalization.NumberStyles.AllowHexSpecifier)))

let private chunkSizeStart =
    followedBy (satisfy CharClass.isHex)
    <|> failOn
            ErrorKind.InvalidChunkSize
            (sprintf "chunk-size must start with a hex digit, found %s (RFC 9112 section 7.1)")

let private chunkLineEnd =
    lineEndOr (
        failOn
            ErrorKind.InvalidChunkSize
            (sprintf "%s in a chunk-size line; expected chunk-ext or CRLF (RFC 9112 section 7.1)")
    )

/// chunk-size [ chunk-ext ] CRLF, returning the size.
let chunkSizeLine: P<int64> =
    chunkSizeStart >>. chunkSize .>> chunkExt .>> chunkLineEnd

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
