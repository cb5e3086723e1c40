namespace HttpUtil.Core

open System
open System.Buffers

/// Where a chunked decoder stands (RFC 9112 section 7.1).
type ChunkedPhase =
    /// Expecting a chunk-size line.
    | SizeLine
    /// Inside a chunk's data, with this many bytes of it still to come.
    | ChunkData of remaining: int64
    /// After a chunk's data, expecting its CRLF.
    | ChunkDataEnd
    /// After the last-chunk, expecting the trailer section (possibly empty) and its empty line.
    | TrailerSection
    /// The body and its trailers have been read; nothing more belongs to it.
    | Finished

/// The immutable state of a chunked decoder: the phase, plus where it stands in the coded
/// body so that error offsets count from the first byte of the body.
[<Struct>]
type ChunkedDecoder =
    {
        /// What the decoder expects next.
        Phase: ChunkedPhase
        /// Bytes of coded body consumed so far (framing and data).
        Position: int64
        /// Body (data) bytes produced so far.
        BodyBytes: int64
    }

    /// A decoder at the start of a chunked body.
    static member Start =
        {
            Phase = SizeLine
            Position = 0L
            BodyBytes = 0L
        }

    /// True once the last-chunk and trailers have been read.
    member this.IsFinished = this.Phase = Finished

/// What one decoding step found.
[<Struct>]
type ChunkedOutput =
    /// The input ends before anything more can be decided: call again with more bytes.
    | NeedMoreData
    /// Body bytes: a slice of the input (no copy). Consume them before calling again.
    | BodyData of Data: ReadOnlySequence<byte>
    /// The body is complete; these are its trailer fields (empty when there were none).
    | BodyEnd of Trailers: Headers

/// One decoding step: the new decoder, how many bytes of the input it consumed (framing plus any
/// data handed out), and what it found.
[<Struct>]
type ChunkedStep =
    {
        Decoder: ChunkedDecoder
        Consumed: int64
        Output: ChunkedOutput
    }

/// The chunked transfer coding (RFC 9112 section 7.1) as a pure incremental decoder and an encoder.
module Chunked =
    [<Literal>]
    let private LF = 10uy

    [<Literal>]
    let private CR = 13uy

    let private advance (d: ChunkedDecoder) (n: int64) phase =
        { d with
            Phase = phase
            Position = d.Position + n
        }

    let private hexValue (b: byte) =
        if b >= '0'B && b <= '9'B then int64 (b - '0'B)
        elif b >= 'a'B && b <= 'f'B then int64 (b - 'a'B) + 10L
        elif b >= 'A'B && b <= 'F'B then int64 (b - 'A'B) + 10L
        else -1L

    /// The size on a chunk-size line that is exactly `1*HEXDIG CRLF` (the common shape), read
    /// straight from its bytes; none for any other line: with extensions, a bare LF, more digits
    /// than `maxDigits`, a size past Int64, or anything wrong. The grammar reads those (and says
    /// what is wrong); on the lines this reads, the two agree (a property test checks it).
    let plainSize (line: ReadOnlySpan<byte>, maxDigits: int) : int64 voption =
        let digits = line.Length - 2

        if digits < 1 || digits > maxDigits || line[digits] <> CR || line[digits + 1] <> LF then
            ValueNone
        else
            let mutable value = 0L
            let mutable ok = true
            let mutable i = 0

            while ok && i < digits do
                let v = hexValue line[i]

                if v < 0L || value > 0x07FFFFFFFFFFFFFFL then
                    ok <- false
                else
                    value <- (value <<< 4) ||| v

                i <- i + 1

            if ok then ValueSome value else ValueNone

    /// Decodes from the start of `input` (the bytes not yet consumed), given the decoder state.
    /// Framing is consumed as far as the bytes allow; body data comes back as a slice of
    /// `input`, at most one chunk's worth per step. `isRequest` picks the trailer rules.
    /// Error offsets count from the first byte of the coded body.
    let decode
        (settings: ParserSettings)
        (isRequest: bool)
        (decoder: ChunkedDecoder)
        (input: ReadOnlySequence<byte>)
        : Result<ChunkedStep, HttpError> =
        let limits = settings.Limits
        let mutable d = decoder
        let mutable consumed = 0L
        let mutable result = ValueNone

        let finish output =
            result <-
                ValueSome(
                    Ok
                        {
                            Decoder = d
                            Consumed = consumed
                            Output = output
                        }
                )

        let fail (e: HttpError) =
            result <- ValueSome(Error(HttpError.shift d.Position e))

        while result.IsNone do
            let rest = input.Slice(consumed)

            match d.Phase with
            | Finished -> finish (BodyEnd Headers.Empty)
            | SizeLine ->
                let window = rest.Slice(0, min rest.Length (int64 limits.MaxChunkLineLength + 2L))

                match window.PositionOf(LF) |> Option.ofNullable with
                | None ->
                    if window.Length >= int64 limits.MaxChunkLineLength + 2L then
                        fail (
                            HttpError.create
                                ErrorKind.LineTooLong
                                0L
                                (sprintf
                                    "chunk-size line longer than %d bytes (limit MaxChunkLineLength)"
                                    limits.MaxChunkLineLength)
                        )
                    else
                        finish NeedMoreData
                | Some lf ->
                    let lineLength = rest.Slice(0, lf).Length + 1L
                    let line = rest.Slice(0, lineLength)

                    let plain =
                        if line.IsSingleSegment then
                            plainSize (line.FirstSpan, limits.MaxChunkSizeDigits)
                        else
                            ValueNone

                    let parsed =
                        match plain with
                        | ValueSome size -> Ok size
                        | ValueNone -> Grammar.run Grammar.chunkSizeLine settings (Parser.decodeLatin1 line)

                    match parsed with
                    | Error e -> fail e
                    | Ok 0L ->
                        consumed <- consumed + lineLength
                        d <- advance d lineLength TrailerSection
                    | Ok size ->
                        consumed <- consumed + lineLength
                        d <- advance d lineLength (ChunkData size)
            | ChunkData remaining ->
                if rest.IsEmpty then
                    finish NeedMoreData
                else
                    let n = min remaining rest.Length
                    let data = rest.Slice(0, n)
                    consumed <- consumed + n

                    d <-
                        { advance
                              d
                              n
                              (if n = remaining then
                                   ChunkDataEnd
                               else
                                   ChunkData(remaining - n)) with
                            BodyBytes = d.BodyBytes + n
                        }

                    finish (BodyData data)
            | ChunkDataEnd ->
                let mutable reader = SequenceReader<byte>(rest)
                let mutable first = 0uy
                let mutable second = 0uy
                let hasFirst = reader.TryRead(&first)
                let hasSecond = reader.TryRead(&second)

                if not hasFirst then
                    finish NeedMoreData
                elif first = LF && settings.Lenience.AllowBareLf then
                    consumed <- consumed + 1L
                    d <- advance d 1L SizeLine
                elif first = CR && not hasSecond then
                    finish NeedMoreData
                elif first = CR && second = LF then
                    consumed <- consumed + 2L
                    d <- advance d 2L SizeLine
                else
                    fail (
                        HttpError.create
                            ErrorKind.InvalidChunkTerminator
                            0L
                            "chunk data must be followed by CRLF; the chunk-size does not match the data (RFC 9112 section 7.1)"
                    )
            | TrailerSection ->
                match Parser.parseTrailers settings isRequest rest with
                | Error e -> fail e
                | Ok NeedMore -> finish NeedMoreData
                | Ok(Complete(trailers, n)) ->
                    consumed <- consumed + n
                    d <- advance d n Finished
                    finish (BodyEnd trailers)

        result.Value

    /// The decoder as if the last `n` bytes of the data it just handed out had not been consumed,
    /// for a caller that took fewer bytes than it was given: those bytes are decoded again by the
    /// next step. `n` must not exceed the data of that step.
    let giveBack (n: int64) (d: ChunkedDecoder) =
        if n <= 0L then
            d
        else
            let remaining =
                match d.Phase with
                | ChunkData r -> r
                | _ -> 0L

            {
                Phase = ChunkData(remaining + n)
                Position = d.Position - n
                BodyBytes = d.BodyBytes - n
            }

    /// Writes the chunk-size line for a chunk of `size` bytes ("1a\r\n") into `dest`; returns the
    /// bytes written, or 0 when `dest` is too small (18 bytes always suffice). `size` must be > 0.
    let writeChunkHeader (size: int64, dest: Span<byte>) : int =
        if size <= 0L then
            0
        else
            let mutable written = 0

            if size.TryFormat(dest, &written, "x") && written + 2 <= dest.Length then
                dest[written] <- CR
                dest[written + 1] <- LF
                written + 2
            else
                0

    /// Writes one chunk (size line, data, CRLF) to `writer`. Empty data writes nothing: an empty
    /// chunk would be the last-chunk.
    let writeChunk (writer: IBufferWriter<byte>, data: ReadOnlySpan<byte>) : unit =
        if not data.IsEmpty then
            let span = writer.GetSpan(data.Length + 20)
            let n = writeChunkHeader (int64 data.Length, span)
            data.CopyTo(span.Slice(n))
            span[n + data.Length] <- CR
            span[n + data.Length + 1] <- LF
            writer.Advance(n + data.Length + 2)

    /// The last-chunk, the trailer fields and the final empty line. Trailer names and values are
    /// validated as for heads; an invalid one is an error and nothing is produced.
    let lastChunk (trailers: Headers) : Result<byte[], HttpError> =
        Serializer.validateFields trailers
        |> Result.map (fun () ->
            let bytes = Array.zeroCreate<byte>(3 + Serializer.fieldsLength trailers)
            "0\r\n"B.CopyTo(bytes, 0)
            Serializer.writeFields trailers (Span bytes) 3 |> ignore
            bytes)

    /// A whole chunked body: each non-empty piece as one chunk, then the last-chunk and trailers.
    let encode (pieces: seq<byte[]>) (trailers: Headers) : Result<byte[], HttpError> =
        lastChunk trailers
        |> Result.map (fun tail ->
            let writer = ArrayBufferWriter<byte>()

            for p in pieces do
                writeChunk (writer, ReadOnlySpan p)

            writer.Write(ReadOnlySpan tail)
            writer.WrittenSpan.ToArray())
