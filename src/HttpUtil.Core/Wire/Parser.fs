/// Incremental head parsing from bytes as a PipeReader delivers them. Each call looks at all the
/// bytes buffered so far and answers "need more", "error at byte N", or "a head of N bytes". The
/// end of a head is found in the raw bytes first (limits are enforced there, before anything is
/// decoded), then exactly those bytes are decoded as Latin-1 and parsed by the FParsec grammar.
/// The answer depends only on the bytes, never on how they are split into segments.
module HttpUtil.Core.Parser

open System
open System.Buffers
open System.Text

[<Struct>]
type internal Scan =
    | ScanNeedMore
    | ScanFound of length: int64
    | ScanFailed of error: HttpError

[<Literal>]
let private LF = 10uy

[<Literal>]
let private CR = 13uy

/// Finds the empty line that ends a section (a head, whose start line is not a field line, or a
/// trailer section) starting at the first byte of `input`. Checks, in order at each line end: line
/// length, section size, field count. Without an end, the partial last line and the bytes so far
/// are checked the same way.
let internal scanSection
    (input: ReadOnlySequence<byte>)
    (hasStartLine: bool)
    (maxBytes: int)
    (maxLine: int)
    (maxFields: int)
    (tooLarge: ErrorKind)
    : Scan =
    let maxLines = if hasStartLine then maxFields + 1 else maxFields

    let tooLong (lineStart: int64) =
        ScanFailed(
            HttpError.create
                ErrorKind.LineTooLong
                lineStart
                (sprintf "a line is longer than %d bytes (limit MaxLineLength)" maxLine)
        )

    let tooBig () =
        ScanFailed(
            HttpError.create
                tooLarge
                (int64 maxBytes)
                (sprintf
                    "no end of the section within %d bytes (limit %s)"
                    maxBytes
                    (if tooLarge = ErrorKind.HeadTooLarge then
                         "MaxHeadBytes"
                     else
                         "MaxTrailerBytes"))
        )

    let tooMany (lineStart: int64) =
        ScanFailed(
            HttpError.create
                ErrorKind.TooManyHeaders
                lineStart
                (sprintf "more than %d field lines (limit MaxHeaderCount)" maxFields)
        )

    let mutable result = ScanNeedMore
    let mutable fin = false
    let mutable segmentStart = 0L
    let mutable lineStart = 0L
    let mutable prev = 0uy
    let mutable lines = 0
    let mutable e = input.GetEnumerator()

    while not fin && e.MoveNext() do
        let span = e.Current.Span
        let mutable i = 0

        while not fin && i < span.Length do
            let rel = span.Slice(i).IndexOf(LF)

            if rel < 0 then
                prev <- span[span.Length - 1]
                i <- span.Length
            else
                let at = i + rel
                let lfPos = segmentStart + int64 at
                let before = if at > 0 then span[at - 1] else prev

                let content =
                    lfPos - lineStart - (if lfPos > lineStart && before = CR then 1L else 0L)

                if content = 0L && lfPos - lineStart <= 1L then
                    fin <- true

                    result <-
                        if lfPos + 1L > int64 maxBytes then
                            tooBig ()
                        else
                            ScanFound(lfPos + 1L)
                elif content > int64 maxLine then
                    fin <- true
                    result <- tooLong lineStart
                elif lfPos + 1L > int64 maxBytes then
                    fin <- true
                    result <- tooBig ()
                else
                    lines <- lines + 1

                    if lines > maxLines then
                        fin <- true
                        result <- tooMany lineStart

                lineStart <- lfPos + 1L
                prev <- LF
                i <- at + 1

        segmentStart <- segmentStart + int64 span.Length

    if fin then
        result
    elif segmentStart - lineStart > int64 maxLine + 1L then
        tooLong lineStart
    elif segmentStart > int64 maxBytes then
        tooBig ()
    else
        ScanNeedMore

/// Skips the empty lines a server ignores before a request-line (RFC 9112 section 2.2): CRLF, and
/// LF alone when bare LF is allowed. Returns how many bytes to skip, or -1 when every byte so far
/// belongs to such lines (or is a CR that may start one).
let private crlf = [| CR; LF |]

let private leadingEmptyLines (allowBareLf: bool) (input: ReadOnlySequence<byte>) : int64 =
    let mutable reader = SequenceReader<byte>(input)
    let mutable skipped = 0L
    let mutable fin = false

    while not fin do
        if reader.IsNext(ReadOnlySpan crlf, true) then
            skipped <- skipped + 2L
        elif allowBareLf && reader.IsNext(LF, true) then
            skipped <- skipped + 1L
        else
            fin <- true

    if reader.End then
        -1L
    elif reader.Remaining = 1L && reader.IsNext(CR, false) then
        -1L
    else
        skipped

/// The first CR followed by a byte other than LF in `input` (only where that next byte is there): its offset,
/// or -1. A bare CR is never allowed in a head (RFC 9112 section 2.2), so a head holding one fails at once
/// instead of waiting for its end.
let private bareCr (input: ReadOnlySequence<byte>) =
    let mutable reader = SequenceReader<byte>(input)
    let mutable found = -1L
    let mutable b = 0uy

    while found < 0L && reader.TryAdvanceTo(CR, true) do
        if reader.TryPeek(&b) && b <> LF then
            found <- reader.Consumed - 1L

    found

/// The first line of `input` (through its LF) as Latin-1 text, or null while it is incomplete.
let private firstLine (input: ReadOnlySequence<byte>) : string | null =
    let at = input.PositionOf(LF)

    if at.HasValue then
        Encoding.Latin1.GetString(input.Slice(0, input.GetPosition(1L, at.Value)).ToArray())
    else
        null

/// While a head is incomplete: the error its bytes so far already prove (a bare CR; a start line that is
/// complete and malformed), so a bad head fails at the first byte that makes it invalid, as llhttp does,
/// instead of waiting for an end that may never come. Offsets count from the start of `input`.
let private earlyError (startLine: Grammar.P<'Start>) (settings: ParserSettings) (input: ReadOnlySequence<byte>) =
    // The start line is checked first: its errors come before any later byte's, as in the whole head's grammar.
    let lineError =
        match firstLine input with
        | null -> ValueNone
        | line ->
            match Grammar.run startLine settings line with
            | Ok _ -> ValueNone
            | Error e -> ValueSome e

    match lineError with
    | ValueSome _ -> lineError
    | ValueNone ->
        match bareCr input with
        | at when at >= 0L ->
            ValueSome(
                HttpError.create
                    ErrorKind.BareCR
                    at
                    "a CR not followed by LF (RFC 9112 section 2.2: a bare CR must be rejected)"
            )
        | _ -> ValueNone

/// The bytes as Latin-1 text, one char per byte.
let internal decodeLatin1 (bytes: ReadOnlySequence<byte>) =
    if bytes.IsSingleSegment then
        Encoding.Latin1.GetString(bytes.FirstSpan)
    else
        Encoding.Latin1.GetString(&bytes)

/// The first byte of a non-empty sequence (whose first segments may be empty).
let private firstByte (input: ReadOnlySequence<byte>) =
    let mutable reader = SequenceReader<byte>(input)
    let mutable b = 0uy
    reader.TryPeek(&b) |> ignore
    b

let private preface = "PRI * HTTP/2.0"B
let private httpSlash = "HTTP/"B

/// How many leading bytes of `input` agree with `expected` (up to its length or the input's end),
/// and how many were compared. Allocates only when they differ.
let private matchPrefix (input: ReadOnlySequence<byte>) (expected: byte[]) =
    let n = int (min input.Length (int64 expected.Length))
    let mutable reader = SequenceReader<byte>(input)

    if reader.IsNext(ReadOnlySpan(expected, 0, n), false) then
        struct (n, n)
    else
        let got = input.Slice(0, n).ToArray()
        let mutable same = 0

        while same < n && got[same] = expected[same] do
            same <- same + 1

        struct (same, n)

/// The text of a head read in canonical form: exactly what the serializer writes for it.
let private canonicalText (serialize: 'Head -> Result<byte[], HttpError>) (head: 'Head) =
    match serialize head with
    | Ok bytes -> Encoding.Latin1.GetString bytes
    | Error e -> invalidOp (sprintf "a head read in canonical form does not serialize (a bug): %s" e.Message)

let private requestText = canonicalText Serializer.requestBytes
let private responseText = canonicalText Serializer.responseBytes

/// The plain reading of a section (`PlainHead`), from its bytes: in place when they are in one
/// segment, else from a rented copy.
let private plainOf (plain: ReadOnlyMemory<byte> -> struct ('Head * bool) voption) (section: ReadOnlySequence<byte>) =
    if section.IsSingleSegment then
        plain section.First
    else
        let length = int section.Length
        let copy = ArrayPool<byte>.Shared.Rent length

        try
            section.CopyTo(Span copy)
            plain (ReadOnlyMemory(copy, 0, length))
        finally
            ArrayPool<byte>.Shared.Return copy

/// Reads the head in `section` (which ends with its empty line): its plain form straight from the
/// bytes when it has one (`PlainHead`; a canonical one is not even decoded to text), else through
/// the grammar, which also names any error. `Complete` with `consumed` bytes.
let private runSection
    plain
    grammar
    rebuild
    settings
    (section: ReadOnlySequence<byte>)
    (offset: int64)
    (consumed: int64)
    =
    let length = int section.Length

    match plainOf plain section with
    | ValueSome(struct (head, true)) -> Ok(Complete(Parsed(head, length, null, rebuild), consumed))
    | ValueSome(struct (head, false)) -> Ok(Complete(Parsed(head, length, decodeLatin1 section, rebuild), consumed))
    | ValueNone ->
        let raw = decodeLatin1 section

        match Grammar.run grammar settings raw with
        | Ok head -> Ok(Complete(Parsed(head, length, raw, rebuild), consumed))
        | Error e -> Error(HttpError.shift offset e)

/// Reads a request head from the start of `input`. Empty lines before the request-line are
/// skipped (and counted in the consumed bytes). `Complete(parsed, n)`: the head ends at byte n,
/// where the body (if any) starts. Error offsets count from the start of `input`.
let parseRequestHead
    (settings: ParserSettings)
    (input: ReadOnlySequence<byte>)
    : Result<Incremental<Parsed<RequestHead>>, HttpError> =
    let limits = settings.Limits
    let skip = leadingEmptyLines settings.Lenience.AllowBareLf input

    if skip < 0L then
        if input.Length > int64 limits.MaxHeadBytes then
            Error(
                HttpError.create
                    ErrorKind.HeadTooLarge
                    (int64 limits.MaxHeadBytes)
                    (sprintf
                        "more than %d bytes of empty lines before a request-line (limit MaxHeadBytes)"
                        limits.MaxHeadBytes)
            )
        else
            Ok NeedMore
    else
        let rest = input.Slice(skip)
        let first = firstByte rest
        let struct (same, _) = matchPrefix rest preface

        if same = preface.Length then
            Error(Grammar.http2PrefaceError skip)
        elif not (CharClass.isTchar (char first)) then
            Error(Grammar.methodStartError skip (char first))
        else
            let budget = limits.MaxHeadBytes - int skip

            match
                scanSection rest true (max budget 0) limits.MaxLineLength limits.MaxHeaderCount ErrorKind.HeadTooLarge
            with
            | ScanNeedMore ->
                match earlyError Grammar.requestLine settings rest with
                | ValueSome e -> Error(HttpError.shift skip e)
                | ValueNone -> Ok NeedMore
            | ScanFailed e when e.Kind = ErrorKind.LineTooLong && e.Offset = 0L ->
                // The request-line itself is too long: 414 URI Too Long, not 431.
                Error(
                    HttpError.create
                        ErrorKind.RequestLineTooLong
                        skip
                        (sprintf "the request-line is longer than %d bytes (limit MaxLineLength)" limits.MaxLineLength)
                )
            | ScanFailed e -> Error(HttpError.shift skip e)
            | ScanFound length ->
                runSection
                    PlainHead.tryRequest
                    Grammar.requestHead
                    requestText
                    settings
                    (rest.Slice(0, length))
                    skip
                    (skip + length)

/// Reads a response head from the start of `input`. `Complete(parsed, n)`: the head ends at byte n.
/// Interim (1xx) responses are heads like any other: the caller reads again for the final one.
let parseResponseHead
    (settings: ParserSettings)
    (input: ReadOnlySequence<byte>)
    : Result<Incremental<Parsed<ResponseHead>>, HttpError> =
    let limits = settings.Limits

    if input.IsEmpty then
        Ok NeedMore
    else
        let struct (same, n) = matchPrefix input httpSlash

        if same < n then
            Error(
                HttpError.create
                    ErrorKind.InvalidStatusLine
                    (int64 same)
                    "a response must start with HTTP/ (RFC 9112 section 4)"
            )
        else
            match
                scanSection
                    input
                    true
                    limits.MaxHeadBytes
                    limits.MaxLineLength
                    limits.MaxHeaderCount
                    ErrorKind.HeadTooLarge
            with
            | ScanNeedMore ->
                match earlyError Grammar.statusLine settings input with
                | ValueSome e -> Error e
                | ValueNone -> Ok NeedMore
            | ScanFailed e -> Error e
            | ScanFound length ->
                runSection
                    PlainHead.tryResponse
                    Grammar.responseHead
                    responseText
                    settings
                    (input.Slice(0, length))
                    0L
                    length

/// Reads a trailer section (the field lines after a last-chunk, and the empty line that ends
/// them) from the start of `input`, with `MaxTrailerBytes` and `MaxHeaderCount` as limits.
let parseTrailers
    (settings: ParserSettings)
    (isRequest: bool)
    (input: ReadOnlySequence<byte>)
    : Result<Incremental<Headers>, HttpError> =
    let limits = settings.Limits

    match
        scanSection
            input
            false
            limits.MaxTrailerBytes
            limits.MaxLineLength
            limits.MaxHeaderCount
            ErrorKind.TrailerTooLarge
    with
    | ScanNeedMore -> Ok NeedMore
    | ScanFailed e -> Error e
    | ScanFound length ->
        let raw = decodeLatin1 (input.Slice(0, length))

        Grammar.run (Grammar.trailerSection isRequest) settings raw
        |> Result.map (fun h -> Complete(h, length))

/// `parseRequestHead` over a byte array.
let parseRequestBytes settings (bytes: byte[]) =
    parseRequestHead settings (ReadOnlySequence<byte>(bytes))

/// `parseResponseHead` over a byte array.
let parseResponseBytes settings (bytes: byte[]) =
    parseResponseHead settings (ReadOnlySequence<byte>(bytes))
