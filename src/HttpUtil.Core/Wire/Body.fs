namespace HttpUtil.Core

open System
open System.Buffers

/// Where a body decoder stands, for any framing: how many bytes a Content-Length body still owes,
/// where a chunked decoder is, how many body bytes came out so far.
[<Struct>]
type BodyDecoder =
    {
        /// How the body is delimited.
        Framing: Framing.BodyLength
        /// Content-Length: bytes still to come. Unused for other framings.
        Remaining: int64
        /// Chunked: the chunked decoder. Unused for other framings.
        Chunks: ChunkedDecoder
        /// Body bytes handed out so far.
        Read: int64
        /// True once the body has ended (trailers included).
        Finished: bool
    }

/// What one body decoding step found.
[<Struct>]
type BodyOutput =
    /// Nothing can be decided from these bytes: read more and call again with them.
    | AwaitMore
    /// Body bytes: a slice of the input (no copy).
    | Data of Bytes: ReadOnlySequence<byte>
    /// The body is complete; its trailer fields (empty unless chunked with trailers).
    | EndOfBody of Trailers: Headers

/// One decoding step: the new decoder (as if all the data handed out were taken), how many bytes
/// of the input it consumed, and what it found.
[<Struct>]
type BodyStep =
    {
        Decoder: BodyDecoder
        Consumed: int64
        Output: BodyOutput
    }

/// Where a body encoder stands: how the body is framed and how many bytes went out.
[<Struct>]
type BodyEncoder =
    {
        /// How the body is framed.
        Framing: Framing.BodyLength
        /// Body bytes written so far.
        Written: int64
    }

/// One codec for the three framings of RFC 9112 section 6.3 (Content-Length, chunked, until the
/// connection closes). Decoding reports data, "need more", the end, or an error: a body cut short
/// (premature end) or a broken chunk. Encoding frames each piece and refuses more bytes than a
/// Content-Length announced; `finish` reports a body that fell short of it.
module Body =
    /// A decoder at the start of a body framed as `framing`.
    let decoder (framing: Framing.BodyLength) : BodyDecoder =
        let remaining =
            match framing with
            | Framing.ContentLength n -> n
            | _ -> 0L

        {
            Framing = framing
            Remaining = remaining
            Chunks = ChunkedDecoder.Start
            Read = 0L
            Finished =
                (match framing with
                 | Framing.NoBody -> true
                 | Framing.ContentLength 0L -> true
                 | _ -> false)
        }

    /// How many body bytes may be read straight from the transport into a caller's buffer, with no
    /// framing among them: the rest of a Content-Length body, or anything of a body that runs until
    /// the connection closes. 0 for chunked (its framing is interleaved with the data), for no body,
    /// and once the body ended. The bytes read that way are then passed to `decode` as they are.
    let passThrough (d: BodyDecoder) : int64 =
        if d.Finished then
            0L
        else
            match d.Framing with
            | Framing.ContentLength _ -> d.Remaining
            | Framing.UntilClose -> Int64.MaxValue
            | Framing.Chunked
            | Framing.NoBody -> 0L

    let private truncated (read: int64) =
        Error(
            HttpError.create
                ErrorKind.UnexpectedEnd
                read
                (sprintf "the connection ended after %d bytes of the body" read)
        )

    let private ended (d: BodyDecoder) consumed trailers =
        Ok
            {
                Decoder = { d with Finished = true }
                Consumed = consumed
                Output = EndOfBody trailers
            }

    let private data (d: BodyDecoder) (slice: ReadOnlySequence<byte>) consumed (finished: bool) =
        Ok
            {
                Decoder =
                    { d with
                        Read = d.Read + slice.Length
                        Finished = finished
                    }
                Consumed = consumed
                Output = Data slice
            }

    /// Decodes from the start of `input` (the bytes not consumed yet). `inputEnded`: no more bytes
    /// will come (the peer closed its side). Data comes back as a slice of `input`, at most what
    /// the framing allows in one step; a caller that takes fewer bytes calls `giveBack`.
    /// `isRequest` picks the trailer rules. Error offsets count body bytes.
    let rec decode
        (settings: ParserSettings)
        (isRequest: bool)
        (d: BodyDecoder)
        (input: ReadOnlySequence<byte>)
        (inputEnded: bool)
        : Result<BodyStep, HttpError> =
        match decodeUnlimited settings isRequest d input inputEnded with
        | Ok step when isRequest && step.Decoder.Read > settings.Limits.MaxRequestBodyBytes ->
            Error(
                HttpError.create
                    ErrorKind.BodyTooLarge
                    settings.Limits.MaxRequestBodyBytes
                    (sprintf
                        "the request body grew past %d bytes (limit MaxRequestBodyBytes)"
                        settings.Limits.MaxRequestBodyBytes)
            )
        | r -> r

    /// `decode` without the request body limit.
    and private decodeUnlimited
        (settings: ParserSettings)
        (isRequest: bool)
        (d: BodyDecoder)
        (input: ReadOnlySequence<byte>)
        (inputEnded: bool)
        : Result<BodyStep, HttpError> =
        if d.Finished then
            ended d 0L Headers.Empty
        else
            match d.Framing with
            | Framing.NoBody -> ended d 0L Headers.Empty
            | Framing.ContentLength _ ->
                if input.IsEmpty then
                    if inputEnded then
                        truncated d.Read
                    else
                        Ok
                            {
                                Decoder = d
                                Consumed = 0L
                                Output = AwaitMore
                            }
                else
                    let n = min input.Length d.Remaining

                    data { d with Remaining = d.Remaining - n } (input.Slice(0L, n)) n (n = d.Remaining)
            | Framing.UntilClose ->
                if input.IsEmpty then
                    if inputEnded then
                        ended d 0L Headers.Empty
                    else
                        Ok
                            {
                                Decoder = d
                                Consumed = 0L
                                Output = AwaitMore
                            }
                else
                    data d input input.Length false
            | Framing.Chunked ->
                match Chunked.decode settings isRequest d.Chunks input with
                | Error e -> Error e
                | Ok step ->
                    let d = { d with Chunks = step.Decoder }

                    match step.Output with
                    | BodyData slice -> data d slice step.Consumed false
                    | BodyEnd trailers -> ended d step.Consumed trailers
                    | NeedMoreData when inputEnded -> truncated d.Read
                    | NeedMoreData ->
                        Ok
                            {
                                Decoder = d
                                Consumed = step.Consumed
                                Output = AwaitMore
                            }

    /// The decoder as if the last `n` bytes of the data it just handed out had not been taken:
    /// the next step hands them out again.
    let giveBack (n: int64) (d: BodyDecoder) =
        if n <= 0L then
            d
        else
            match d.Framing with
            | Framing.ContentLength _ ->
                { d with
                    Remaining = d.Remaining + n
                    Read = d.Read - n
                    Finished = false
                }
            | Framing.Chunked ->
                { d with
                    Chunks = Chunked.giveBack n d.Chunks
                    Read = d.Read - n
                }
            | _ -> { d with Read = d.Read - n }

    /// An encoder for a body framed as `framing`.
    let encoder (framing: Framing.BodyLength) : BodyEncoder = { Framing = framing; Written = 0L }

    /// Frames `data` into `writer` (as it is, or as one chunk) and counts it. More bytes than a
    /// Content-Length announced is an error, and nothing is written.
    let write (writer: IBufferWriter<byte>, e: BodyEncoder, data: ReadOnlySpan<byte>) : Result<BodyEncoder, HttpError> =
        if data.IsEmpty then
            Ok e
        else
            match e.Framing with
            | Framing.ContentLength n when e.Written + int64 data.Length > n ->
                Error(
                    HttpError.create
                        ErrorKind.ContentLengthOverrun
                        n
                        (sprintf "the body is longer than its Content-Length of %d bytes" n)
                )
            | Framing.NoBody ->
                Error(
                    HttpError.create
                        ErrorKind.ContentLengthOverrun
                        0L
                        "this message has no body (HEAD, 1xx, 204, 304 or a 2xx to CONNECT), yet body bytes were written"
                )
            | Framing.Chunked ->
                Chunked.writeChunk (writer, data)

                Ok
                    { e with
                        Written = e.Written + int64 data.Length
                    }
            | _ ->
                let mutable rest = data

                // Ask for room for the whole piece (up to 64 KiB at a time), so a large write lands
                // in one pipe segment instead of many small ones.
                while not rest.IsEmpty do
                    let span = writer.GetSpan(min rest.Length (64 * 1024))
                    let n = min span.Length rest.Length
                    rest.Slice(0, n).CopyTo(span)
                    writer.Advance n
                    rest <- rest.Slice n

                Ok
                    { e with
                        Written = e.Written + int64 data.Length
                    }

    /// Checks that the body went out whole: a Content-Length body that fell short is an error (the
    /// connection can no longer be framed). For chunked bodies, writes nothing: the caller adds
    /// the last-chunk with its trailers (`Chunked.lastChunk`).
    let finish (e: BodyEncoder) : Result<unit, HttpError> =
        match e.Framing with
        | Framing.ContentLength n when e.Written < n ->
            Error(
                HttpError.create
                    ErrorKind.UnexpectedEnd
                    e.Written
                    (sprintf "the body ended after %d of its %d bytes (Content-Length)" e.Written n)
            )
        | _ -> Ok()
