namespace HttpUtil.Core

open System.Buffers
open System.Runtime.InteropServices

/// How the body of a message is delimited (RFC 9112 section 6.3), for C# callers.
type BodyFraming =
    /// The message has no body.
    | None = 0
    /// A body of exactly `length` bytes.
    | ContentLength = 1
    /// A chunked body, ended by a last-chunk and trailers.
    | Chunked = 2
    /// A response body that runs until the connection closes.
    | UntilClose = 3

/// What one step of a `BodyReader` found.
type BodyReadStatus =
    /// Body bytes came out (`data`); consume them and read again.
    | Data = 0
    /// Nothing can be decided from these bytes: read more and call again with them.
    | NeedMoreData = 1
    /// The body ended; `Trailers` holds its trailer fields.
    | End = 2
    /// The body is broken or was cut short: `error` says what and where.
    | InvalidData = 3

/// The wire format's entry points shaped for C#: `Try` methods with an `OperationStatus` and `out`
/// values, no F# types in the signatures but the core's own records. F# callers may use `Parser`,
/// `Framing` and `Body` directly.
[<AbstractClass; Sealed>]
type Http1Parser =
    static member private Head
        (
            result: Result<Incremental<Parsed<'T>>, HttpError>,
            head: byref<Parsed<'T> | null>,
            consumed: byref<int64>,
            error: byref<HttpError | null>
        ) =
        head <- null
        consumed <- 0L
        error <- null

        match result with
        | Error e ->
            error <- e
            OperationStatus.InvalidData
        | Ok NeedMore -> OperationStatus.NeedMoreData
        | Ok(Complete(parsed, n)) ->
            head <- parsed
            consumed <- n
            OperationStatus.Done

    /// Parses a request head from the start of `input`. `Done`: `head` holds it and `consumed` its
    /// length (the body starts there; empty lines before the request-line are counted).
    /// `NeedMoreData`: the head does not end within `input` yet; call again with the same bytes and
    /// more. `InvalidData`: `error` says what is wrong, where, and the status to answer with.
    static member TryParseRequestHead
        (
            input: inref<ReadOnlySequence<byte>>,
            settings: ParserSettings,
            [<Out>] head: byref<Parsed<RequestHead> | null>,
            [<Out>] consumed: byref<int64>,
            [<Out>] error: byref<HttpError | null>
        ) : OperationStatus =
        Http1Parser.Head(Parser.parseRequestHead settings input, &head, &consumed, &error)

    /// Parses a response head from the start of `input`; as `TryParseRequestHead`. Interim (1xx)
    /// responses are heads like any other.
    static member TryParseResponseHead
        (
            input: inref<ReadOnlySequence<byte>>,
            settings: ParserSettings,
            [<Out>] head: byref<Parsed<ResponseHead> | null>,
            [<Out>] consumed: byref<int64>,
            [<Out>] error: byref<HttpError | null>
        ) : OperationStatus =
        Http1Parser.Head(Parser.parseResponseHead settings input, &head, &consumed, &error)

    static member private Framing
        (
            result: Result<Framing.BodyLength, HttpError>,
            framing: byref<BodyFraming>,
            length: byref<int64>,
            error: byref<HttpError | null>
        ) =
        framing <- BodyFraming.None
        length <- 0L
        error <- null

        match result with
        | Error e ->
            error <- e
            false
        | Ok body ->
            match body with
            | Framing.NoBody -> ()
            | Framing.ContentLength n ->
                framing <- BodyFraming.ContentLength
                length <- n
            | Framing.Chunked -> framing <- BodyFraming.Chunked
            | Framing.UntilClose -> framing <- BodyFraming.UntilClose

            true

    /// How the body of a request with this head is delimited; false and `error` when the framing
    /// is invalid or ambiguous (Transfer-Encoding with Content-Length, differing lengths...).
    static member TryGetBodyFraming
        (
            head: RequestHead,
            [<Out>] framing: byref<BodyFraming>,
            [<Out>] length: byref<int64>,
            [<Out>] error: byref<HttpError | null>
        ) : bool =
        Http1Parser.Framing(Framing.requestBody head, &framing, &length, &error)

    /// How the body of a response with this head to a request with `requestMethod` is delimited;
    /// false and `error` when the framing is invalid.
    static member TryGetBodyFraming
        (
            requestMethod: string,
            head: ResponseHead,
            [<Out>] framing: byref<BodyFraming>,
            [<Out>] length: byref<int64>,
            [<Out>] error: byref<HttpError | null>
        ) : bool =
        Http1Parser.Framing(Framing.responseBody requestMethod head, &framing, &length, &error)

/// Reads one message body, framed as given, from the bytes a caller hands it (the core's `Body`
/// codec behind a C#-shaped call). Not thread-safe; one reader per body.
[<Sealed>]
type BodyReader(framing: BodyFraming, length: int64, isRequest: bool, settings: ParserSettings) =
    let mutable decoder =
        Body.decoder (
            match framing with
            | BodyFraming.ContentLength -> Framing.ContentLength length
            | BodyFraming.Chunked -> Framing.Chunked
            | BodyFraming.UntilClose -> Framing.UntilClose
            | _ -> Framing.NoBody
        )

    let mutable trailers = Headers.Empty

    /// The trailer fields, once the body has ended (empty unless chunked with trailers).
    member _.Trailers = trailers

    /// Body bytes handed out so far.
    member _.BytesRead = decoder.Read

    /// True once the body has ended.
    member _.IsFinished = decoder.Finished

    /// One step over `input` (the bytes not consumed yet); `inputEnded`: no more will come.
    /// `Data`: `data` is a slice of `input` (no copy) and `consumed` counts it with any framing
    /// before it. `NeedMoreData`: `consumed` framing bytes were used; call again with more.
    /// `End`: the body ended after `consumed` bytes. `InvalidData`: `error` says what and where.
    member _.Read
        (
            input: inref<ReadOnlySequence<byte>>,
            inputEnded: bool,
            [<Out>] data: byref<ReadOnlySequence<byte>>,
            [<Out>] consumed: byref<int64>,
            [<Out>] error: byref<HttpError | null>
        ) : BodyReadStatus =
        data <- ReadOnlySequence<byte>.Empty
        consumed <- 0L
        error <- null

        match Body.decode settings isRequest decoder input inputEnded with
        | Error e ->
            error <- e
            BodyReadStatus.InvalidData
        | Ok step ->
            decoder <- step.Decoder
            consumed <- step.Consumed

            match step.Output with
            | Data bytes ->
                data <- bytes
                BodyReadStatus.Data
            | EndOfBody t ->
                trailers <- t
                BodyReadStatus.End
            | AwaitMore -> BodyReadStatus.NeedMoreData
