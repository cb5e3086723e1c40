/// The plain case of a head, read straight from its bytes without the grammar's machinery: a
/// request-line or status-line of HTTP/1.0 or 1.1 and field lines of the form
/// `token ":" OWS value OWS CRLF`, ending with an empty CRLF line. That is what nearly every peer
/// sends; it is read with one pass of index arithmetic, and common field names, methods, reason
/// phrases and values come back as shared strings instead of new ones. A head in canonical form
/// (one SP after each colon, no trailing whitespace, SP after the status code: exactly what the
/// serializer writes) is reported as such, so its text can be rebuilt from it when asked for
/// instead of being decoded for every message.
///
/// Anything else (bare LF, obs-fold, a character outside its rule, another version, a target that
/// does not fit its method...) gives `ValueNone`, and the caller parses the head with the FParsec
/// grammar (`Grammar.fs`), which accepts what the lenience allows and names the error otherwise.
/// So this path decides nothing the grammar does not: every head it accepts, the grammar accepts
/// with the same result (a property in the tests checks it on generated heads).
module internal HttpUtil.Core.PlainHead

open System
open System.Text

/// True when the bytes are the chars of `text`, one byte per char.
let private sameText (span: ReadOnlySpan<byte>) (text: string) =
    let mutable k = 0

    if span.Length = text.Length then
        while k < span.Length && span[k] = byte text[k] do
            k <- k + 1

    span.Length = text.Length && k = span.Length

/// Interns strings from a fixed list: a span equal to a listed string (ordinally) comes back as
/// that string; anything else as a new string.
type private Interned(strings: string seq) =
    let byLength =
        let all = Seq.toArray strings |> Array.distinct
        let longest = all |> Array.map String.length |> Array.fold max 0

        Array.init (longest + 1) (fun n -> all |> Array.filter (fun s -> s.Length = n))

    /// The listed string equal to the bytes, or null.
    member _.TryGet(bytes: ReadOnlySpan<byte>, start: int, length: int) : string | null =
        let span = bytes.Slice(start, length)

        let candidates =
            if length < byLength.Length then
                byLength[length]
            else
                Array.Empty()

        let mutable found = -1
        let mutable i = 0

        while found < 0 && i < candidates.Length do
            if sameText span candidates[i] then
                found <- i

            i <- i + 1

        if found < 0 then null else candidates[found]

    /// The listed string equal to the bytes, or a new one.
    member this.Get(bytes: ReadOnlySpan<byte>, start: int, length: int) =
        match this.TryGet(bytes, start, length) with
        | null -> Encoding.Latin1.GetString(bytes.Slice(start, length))
        | s -> s

/// The last value read for each of a few listed field names on this thread (Date, Server, ETag,
/// Content-Length...): a peer sends the same value message after message, and it is then not
/// made again. Keyed by the listed name itself (a shared string), so a lookup is a reference
/// comparison and a byte comparison.
type private RecentValues =
    [<ThreadStatic; DefaultValue>]
    static val mutable private names: (string | null)[]

    [<ThreadStatic; DefaultValue>]
    static val mutable private values: string[]

    [<ThreadStatic; DefaultValue>]
    static val mutable private next: int

    /// The value of `name` in `bytes`: the one remembered when it is the same, else a new one
    /// (remembered from now on).
    static member Get(name: string, bytes: ReadOnlySpan<byte>, start: int, length: int) =
        if obj.ReferenceEquals(RecentValues.names, null) then
            RecentValues.names <- Array.zeroCreate 16
            RecentValues.values <- Array.create 16 ""

        let names = RecentValues.names
        let mutable slot = -1
        let mutable i = 0

        while slot < 0 && i < names.Length do
            if obj.ReferenceEquals(names[i], name) then
                slot <- i

            i <- i + 1

        let span = bytes.Slice(start, length)

        if slot >= 0 && sameText span RecentValues.values[slot] then
            RecentValues.values[slot]
        else
            let value = Encoding.Latin1.GetString span

            if slot < 0 then
                slot <- RecentValues.next
                RecentValues.next <- (slot + 1) % names.Length
                names[slot] <- name

            RecentValues.values[slot] <- value
            value

let private withLowerCase (names: string list) =
    names @ (names |> List.map (fun n -> n.ToLowerInvariant()))

let private fieldNames =
    Interned(
        withLowerCase
            [
                "Accept"
                "Accept-Encoding"
                "Accept-Language"
                "Accept-Ranges"
                "Access-Control-Allow-Origin"
                "Age"
                "Authorization"
                "Cache-Control"
                "Connection"
                "Content-Encoding"
                "Content-Language"
                "Content-Length"
                "Content-Type"
                "Cookie"
                "Date"
                "ETag"
                "Expect"
                "Expires"
                "Host"
                "If-Modified-Since"
                "If-None-Match"
                "Keep-Alive"
                "Last-Modified"
                "Link"
                "Location"
                "Origin"
                "Pragma"
                "Referer"
                "Server"
                "Set-Cookie"
                "Strict-Transport-Security"
                "TE"
                "Trailer"
                "Transfer-Encoding"
                "Upgrade"
                "User-Agent"
                "Vary"
                "Via"
                "WWW-Authenticate"
                "X-Content-Type-Options"
                "X-Forwarded-For"
                "X-Forwarded-Host"
                "X-Forwarded-Proto"
                "X-Frame-Options"
                "X-Request-Id"
                "traceparent"
            ]
    )

let private fieldValues =
    Interned
        [
            "keep-alive"
            "close"
            "chunked"
            "bytes"
            "gzip"
            "br"
            "identity"
            "no-cache"
            "no-store"
            "nosniff"
            "text/plain"
            "text/html"
            "text/html; charset=utf-8"
            "text/plain; charset=utf-8"
            "application/json"
            "application/json; charset=utf-8"
            "application/octet-stream"
            "*/*"
            "0"
            "Accept-Encoding"
            "upgrade"
            "websocket"
            "100-continue"
            "nginx"
            "Kestrel"
        ]

let private methods =
    Interned
        [
            "GET"
            "HEAD"
            "POST"
            "PUT"
            "DELETE"
            "CONNECT"
            "OPTIONS"
            "TRACE"
            "PATCH"
        ]

let private reasons =
    Interned
        [
            "OK"
            "Created"
            "Accepted"
            "No Content"
            "Partial Content"
            "Moved Permanently"
            "Found"
            "See Other"
            "Not Modified"
            "Temporary Redirect"
            "Permanent Redirect"
            "Bad Request"
            "Unauthorized"
            "Forbidden"
            "Not Found"
            "Method Not Allowed"
            "Conflict"
            "Gone"
            "Too Many Requests"
            "Internal Server Error"
            "Bad Gateway"
            "Service Unavailable"
            "Gateway Timeout"
            "Continue"
            "Switching Protocols"
            "Early Hints"
            "Processing"
        ]

/// The fields collected from one section. One buffer per thread, reused: a head is read to its
/// end on the thread that started it, and the fields are copied out once.
type private Scratch =
    [<ThreadStatic; DefaultValue>]
    static val mutable private fields: HeaderField[]

    static member Fields =
        if obj.ReferenceEquals(Scratch.fields, null) then
            Scratch.fields <- Array.zeroCreate 32

        Scratch.fields

    static member Grow() =
        let bigger = Array.zeroCreate (Scratch.fields.Length * 2)
        Scratch.fields.CopyTo(bigger, 0)
        Scratch.fields <- bigger
        bigger

/// The bytes of a token, and of a field value (field-vchar, obs-text, SP, HTAB): runs of them are
/// found with vectorized searches for the first byte outside the set.
let private tcharBytes =
    Buffers.SearchValues.Create(
        ReadOnlySpan
            [|
                for b in 0uy .. 255uy do
                    if CharClass.isTchar (char b) then
                        b
            |]
    )

let private valueBytes =
    Buffers.SearchValues.Create(
        ReadOnlySpan
            [|
                for b in 0uy .. 255uy do
                    if CharClass.isFieldValueChar (char b) then
                        b
            |]
    )

/// The end of the run of bytes from `i` on that belong to `set`.
let private runOf (set: Buffers.SearchValues<byte>) (text: ReadOnlySpan<byte>) (i: int) =
    if i >= text.Length then
        i
    else
        match text.Slice(i).IndexOfAnyExcept(set) with
        | -1 -> text.Length
        | n -> i + n

/// True when `text` has CR LF at `i`.
let inline private crlfAt (text: ReadOnlySpan<byte>) (i: int) =
    i + 1 < text.Length && text[i] = 13uy && text[i + 1] = 10uy

/// The end of the run of bytes from `i` on whose chars satisfy `pred`.
let inline private runEnd ([<InlineIfLambda>] pred: char -> bool) (text: ReadOnlySpan<byte>) (i: int) =
    let mutable j = i

    while j < text.Length && pred (char text[j]) do
        j <- j + 1

    j

let private http1 = "HTTP/1."B

/// "HTTP/1.1" or "HTTP/1.0" at `i`.
let private versionAt (text: ReadOnlySpan<byte>) (i: int) =
    if i + 8 <= text.Length && text.Slice(i, 7).SequenceEqual(ReadOnlySpan http1) then
        match text[i + 7] with
        | '1'B -> ValueSome Http11
        | '0'B -> ValueSome Http10
        | _ -> ValueNone
    else
        ValueNone

/// The field lines from `start` to the end of `text`, which must end with the empty line, and
/// whether each is in canonical form (`name: value`).
let private fields (text: ReadOnlySpan<byte>) (start: int) (canonical: byref<bool>) : Headers voption =
    let mutable buffer = Scratch.Fields
    let mutable count = 0
    let mutable i = start
    let mutable result = ValueNone
    let mutable fin = false

    while not fin do
        if crlfAt text i then
            fin <- true

            if i + 2 = text.Length then
                result <-
                    ValueSome(
                        if count = 0 then
                            Headers.Empty
                        else
                            Headers.Own(buffer.AsSpan(0, count).ToArray())
                    )
        else
            let nameEnd = runOf tcharBytes text i

            if nameEnd = i || nameEnd >= text.Length || text[nameEnd] <> ':'B then
                fin <- true
            else
                let valueStart = runEnd CharClass.isOws text (nameEnd + 1)
                let lineEnd = runOf valueBytes text valueStart

                if not (crlfAt text lineEnd) then
                    fin <- true
                else
                    let mutable valueEnd = lineEnd

                    while valueEnd > valueStart && CharClass.isOws (char text[valueEnd - 1]) do
                        valueEnd <- valueEnd - 1

                    canonical <-
                        canonical
                        && valueStart = nameEnd + 2
                        && text[nameEnd + 1] = ' 'B
                        && valueEnd = lineEnd

                    if count = buffer.Length then
                        buffer <- Scratch.Grow()

                    let value =
                        match fieldValues.TryGet(text, valueStart, valueEnd - valueStart) with
                        | null -> ValueNone
                        | v -> ValueSome v

                    buffer[count] <-
                        match fieldNames.TryGet(text, i, nameEnd - i) with
                        | null ->
                            {
                                Name = Encoding.Latin1.GetString(text.Slice(i, nameEnd - i))
                                Value =
                                    match value with
                                    | ValueSome v -> v
                                    | ValueNone ->
                                        Encoding.Latin1.GetString(text.Slice(valueStart, valueEnd - valueStart))
                            }
                        | name ->
                            {
                                Name = name
                                Value =
                                    match value with
                                    | ValueSome v -> v
                                    | ValueNone -> RecentValues.Get(name, text, valueStart, valueEnd - valueStart)
                            }

                    count <- count + 1
                    i <- lineEnd + 2

    result

/// A response head in its plain form, and whether that form is canonical; none when it is not
/// plain (the grammar decides then).
let tryResponse (bytes: ReadOnlyMemory<byte>) : struct (ResponseHead * bool) voption =
    let text = bytes.Span

    match versionAt text 0 with
    | ValueSome version when
        text.Length > 12
        && text[8] = ' 'B
        && Char.IsAsciiDigit(char text[9])
        && Char.IsAsciiDigit(char text[10])
        && Char.IsAsciiDigit(char text[11])
        && text[9] <> '0'B
        ->
        let status =
            (int text[9] - 48) * 100 + (int text[10] - 48) * 10 + (int text[11] - 48)

        let mutable canonical = true
        let mutable reason = ""
        let mutable lineEnd = -1

        if crlfAt text 12 then
            canonical <- false // the serializer writes the SP before an empty reason
            lineEnd <- 12
        elif text[12] = ' 'B then
            lineEnd <- runOf valueBytes text 13
            reason <- reasons.Get(text, 13, lineEnd - 13)

        if lineEnd < 0 || not (crlfAt text lineEnd) then
            ValueNone
        else
            match fields text (lineEnd + 2) &canonical with
            | ValueSome headers ->
                ValueSome(
                    struct ({
                                Version = version
                                Status = status
                                Reason = reason
                                Headers = headers
                            },
                            canonical)
                )
            | ValueNone -> ValueNone
    | _ -> ValueNone

/// A request head in its plain form, and whether that form is canonical; none when it is not
/// plain (the grammar decides then, errors included).
let tryRequest (bytes: ReadOnlyMemory<byte>) : struct (RequestHead * bool) voption =
    let text = bytes.Span
    let methodEnd = runOf tcharBytes text 0

    if methodEnd = 0 || methodEnd >= text.Length || text[methodEnd] <> ' 'B then
        ValueNone
    else
        let targetStart = methodEnd + 1
        let targetEnd = runEnd CharClass.isVchar text targetStart

        if targetEnd = targetStart || targetEnd >= text.Length || text[targetEnd] <> ' 'B then
            ValueNone
        else
            match versionAt text (targetEnd + 1) with
            | ValueSome version when crlfAt text (targetEnd + 9) ->
                let method = methods.Get(text, 0, methodEnd)

                let target =
                    Encoding.Latin1.GetString(text.Slice(targetStart, targetEnd - targetStart))

                match Message.classifyTarget method target with
                | Ok form ->
                    let mutable canonical = true

                    match fields text (targetEnd + 11) &canonical with
                    | ValueSome headers ->
                        ValueSome(
                            struct ({
                                        Method = method
                                        Target = target
                                        Form = form
                                        Version = version
                                        Headers = headers
                                    },
                                    canonical)
                        )
                    | ValueNone -> ValueNone
                | Error _ -> ValueNone
            | _ -> ValueNone
