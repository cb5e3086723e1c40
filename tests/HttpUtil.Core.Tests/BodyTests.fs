/// The one body codec (Wire/Body.fs) for the three framings: any delivery of the bytes and any
/// amount taken per read give the same body; premature end and overrun are errors; the encoder
/// refuses overrun and reports underrun.
module HttpUtil.Core.Tests.BodyTests

open System
open System.Buffers
open NUnit.Framework
open FsCheck
open FsCheck.FSharp
open FsCheck.NUnit
open HttpUtil.Core
open HttpUtil.Core.Tests.Gen
open HttpUtil.Core.Tests.PropertyTests

/// Decodes a body as a connection would: the peer delivers `bytes` in pieces cut at `cuts` (the
/// input ends after the last one), and each read takes at most the next of `takes` bytes (at
/// least 1), giving the rest back. Returns the body, its trailers and the bytes left unconsumed.
let decodeAll (framing: Framing.BodyLength) (bytes: byte[]) (cuts: int list) (takes: int list) =
    let pieces = deliveries bytes cuts |> List.filter (fun p -> p.Length > 0)
    let out = ResizeArray<byte>()
    let mutable buffered = Array.empty<byte>
    let mutable pending = pieces
    let mutable takes = takes
    let mutable d = Body.decoder framing
    let mutable result = None
    let mutable guard = 0

    let nextTake () =
        match takes with
        | t :: rest ->
            takes <- rest @ [ t ]
            1 + abs t % 64
        | [] -> Int32.MaxValue

    while result.IsNone do
        guard <- guard + 1

        if guard > 1_000_000 then
            failwith "the decoder made no progress"

        let ended = List.isEmpty pending

        match Body.decode strict false d (ReadOnlySequence buffered) ended with
        | Error e -> result <- Some(Error e)
        | Ok step ->
            match step.Output with
            | Data slice ->
                let take = min (int slice.Length) (nextTake ())
                out.AddRange(slice.Slice(0, take).ToArray())
                let back = slice.Length - int64 take
                d <- Body.giveBack back step.Decoder
                buffered <- buffered[int (step.Consumed - back) ..]
            | EndOfBody trailers ->
                d <- step.Decoder
                buffered <- buffered[int step.Consumed ..]
                let rest = Array.concat (buffered :: pending)
                result <- Some(Ok(out.ToArray(), trailers, rest.Length))
            | AwaitMore ->
                d <- step.Decoder
                buffered <- buffered[int step.Consumed ..]

                match pending with
                | p :: rest ->
                    buffered <- Array.append buffered p
                    pending <- rest
                | [] -> result <- Some(Error(HttpError.create ErrorKind.InvalidHead -1L "asked for more after the end"))

    result.Value

[<Property(MaxTest = 300, Arbitrary = [| typeof<BodyArbitraries> |])>]
let ``any delivery and any read size give the same body, for each framing``
    (body: BodyCase)
    (cuts: int list)
    (takes: int list)
    =
    let data = Array.concat body.Pieces
    let chunked = Chunked.encode body.Pieces body.Trailers |> ok
    // A message after the body must stay unread.
    let next = latin1 "GET /next HTTP/1.1\r\n\r\n"

    let cl =
        decodeAll (Framing.ContentLength(int64 data.Length)) (Array.append data next) cuts takes

    let ch = decodeAll Framing.Chunked (Array.append chunked next) cuts takes
    let uc = decodeAll Framing.UntilClose data cuts takes

    cl = Ok(data, Headers.Empty, next.Length)
    && ch = Ok(data, body.Trailers, next.Length)
    && uc = Ok(data, Headers.Empty, 0)

[<Property(MaxTest = 300, Arbitrary = [| typeof<BodyArbitraries> |])>]
let ``a body cut short is a premature end at the byte it stopped, however it arrives``
    (body: BodyCase)
    (cuts: int list)
    (cut: int)
    =
    let data = Array.concat body.Pieces
    let chunked = Chunked.encode body.Pieces body.Trailers |> ok
    let keepCl = if data.Length = 0 then 0 else abs cut % data.Length
    let keepCh = abs cut % chunked.Length

    let clCut =
        decodeAll (Framing.ContentLength(int64 data.Length + 1L)) data[.. keepCl - 1] cuts [ 7 ]

    let chCut = decodeAll Framing.Chunked chunked[.. keepCh - 1] cuts [ 7 ]

    match clCut, chCut with
    | Error a, Error b ->
        a.Kind = ErrorKind.UnexpectedEnd
        && a.Offset = int64 keepCl
        && b.Kind = ErrorKind.UnexpectedEnd
    | _ -> false

[<Test>]
let ``no body and an empty Content-Length body end at once, consuming nothing`` () =
    for framing in [ Framing.NoBody; Framing.ContentLength 0L ] do
        let d = Body.decoder framing
        Assert.That(d.Finished, Is.True)

        match Body.decode strict false d (ReadOnlySequence(latin1 "GET / HTTP/1.1\r\n\r\n")) false with
        | Ok step ->
            Assert.That(step.Consumed, Is.EqualTo 0L)
            Assert.That(step.Output, Is.EqualTo(EndOfBody Headers.Empty))
        | Error e -> Assert.Fail(string e)

[<Property(MaxTest = 300)>]
let ``the encoder frames Content-Length exactly, refusing overrun and reporting underrun``
    (pieces: byte[] list)
    (extra: byte)
    =
    let total = pieces |> List.sumBy (fun p -> int64 p.Length)
    let writer = ArrayBufferWriter<byte>()

    let folded =
        pieces
        |> List.fold
            (fun acc (p: byte[]) ->
                match acc with
                | Ok e -> Body.write (writer, e, ReadOnlySpan p)
                | err -> err)
            (Ok(Body.encoder (Framing.ContentLength total)))

    match folded with
    | Error _ -> false
    | Ok e ->
        let exact =
            Body.finish e = Ok() && writer.WrittenSpan.ToArray() = Array.concat pieces

        let over =
            match Body.write (ArrayBufferWriter<byte>(), e, ReadOnlySpan [| extra |]) with
            | Error err -> err.Kind = ErrorKind.ContentLengthOverrun
            | Ok _ -> false

        let under =
            match
                Body.finish
                    { e with
                        Framing = Framing.ContentLength(total + 1L)
                    }
            with
            | Error err -> err.Kind = ErrorKind.UnexpectedEnd && err.Offset = total
            | Ok() -> false

        exact && over && under

[<Property(MaxTest = 300, Arbitrary = [| typeof<BodyArbitraries> |])>]
let ``chunked encoder output decodes to the same body`` (body: BodyCase) (cuts: int list) =
    let writer = ArrayBufferWriter<byte>()

    let e =
        body.Pieces
        |> List.fold (fun e (p: byte[]) -> Body.write (writer, e, ReadOnlySpan p) |> ok) (Body.encoder Framing.Chunked)

    Body.finish e |> ok
    writer.Write(ReadOnlySpan(Chunked.lastChunk body.Trailers |> ok))

    decodeAll Framing.Chunked (writer.WrittenSpan.ToArray()) cuts [ 3 ] = Ok(Array.concat body.Pieces, body.Trailers, 0)

[<Test>]
let ``a message without a body refuses body bytes`` () =
    match Body.write (ArrayBufferWriter<byte>(), Body.encoder Framing.NoBody, ReadOnlySpan [| 1uy |]) with
    | Error e -> Assert.That(e.Kind, Is.EqualTo ErrorKind.ContentLengthOverrun)
    | Ok _ -> Assert.Fail "body bytes were accepted for a message without a body"

/// Chunk-size lines of every shape: hex digits (sometimes many, sometimes zeros), extensions,
/// whitespace, quotes, stray chars, and endings CRLF, bare LF or bare CR.
let private chunkLine =
    let piece =
        Gen.frequency
            [
                6,
                Gen.elements
                    [
                        "0"
                        "1"
                        "7"
                        "9"
                        "a"
                        "F"
                        "f"
                        "8"
                        "00"
                        "ffffffffffffffff"
                        "7fffffffffffffff"
                    ]
                1, Gen.elements [ ";"; ";a"; ";a=b"; ";a=\"x y\""; " "; "\t"; "g"; "="; "\""; "-"; "" ]
            ]

    gen {
        let! parts = Gen.listOfLength 3 piece |> Gen.map (String.concat "")

        let! ending =
            Gen.frequency [ 8, Gen.constant "\r\n"; 1, Gen.constant "\n"; 1, Gen.constant "\r" ]

        return parts + ending
    }

[<Property(MaxTest = 1000)>]
let ``the plain chunk-size fast path agrees with the grammar on every line it reads`` () =
    Prop.forAll (Arb.fromGen chunkLine) (fun line ->
        let bytes = latin1 line

        match Chunked.plainSize (ReadOnlySpan bytes, strict.Limits.MaxChunkSizeDigits) with
        | ValueNone -> true
        | ValueSome size -> Grammar.run Grammar.chunkSizeLine strict line = Ok size)

[<Test>]
let ``the plain chunk-size fast path reads HEX CRLF and leaves everything else to the grammar`` () =
    let plain (s: string) =
        Chunked.plainSize (ReadOnlySpan(latin1 s), 16)

    Assert.That(plain "1a\r\n", Is.EqualTo(ValueSome 26L))
    Assert.That(plain "7fffffffffffffff\r\n", Is.EqualTo(ValueSome Int64.MaxValue))

    for other in
        [
            "8000000000000000\r\n"
            "1a;x=y\r\n"
            "1a\n"
            "1a \r\n"
            "\r\n"
            "0000000000000000001\r\n"
            "g\r\n"
        ] do
        Assert.That(plain other, Is.EqualTo(ValueNone: int64 voption), other)

/// Decodes all of `bytes` at once as a request (or response) body under `limit`: the body, or the error.
let private decodeWithin (limit: int64) (isRequest: bool) (framing: Framing.BodyLength) (bytes: byte[]) =
    let settings =
        { strict with
            Limits = strict.Limits.WithMaxRequestBodyBytes limit
        }

    let mutable d = Body.decoder framing
    let mutable rest = ReadOnlySequence bytes
    let out = ResizeArray<byte>()
    let mutable result = None

    while result.IsNone do
        match Body.decode settings isRequest d rest true with
        | Error e -> result <- Some(Error e)
        | Ok step ->
            d <- step.Decoder
            rest <- rest.Slice(step.Consumed)

            match step.Output with
            | Data s -> out.AddRange(s.ToArray())
            | EndOfBody _ -> result <- Some(Ok(out.ToArray()))
            | AwaitMore -> result <- Some(Error(HttpError.create ErrorKind.UnexpectedEnd 0L "more"))

    result.Value

[<Property>]
let ``a chunked request body is refused exactly when it grows past MaxRequestBodyBytes`` (size: byte, limit: byte) =
    let body = Array.create (int size) (byte 'b')
    let encoded = Chunked.encode [ body ] Headers.Empty |> ok

    match decodeWithin (int64 limit) true Framing.Chunked encoded with
    | Ok got -> int size <= int limit && got = body
    | Error e -> int size > int limit && e.Kind = ErrorKind.BodyTooLarge && e.StatusHint = 413

[<Test>]
let ``responses are not held to MaxRequestBodyBytes`` () =
    let body = Array.create 100 (byte 'r')

    match decodeWithin 10L false (Framing.ContentLength 100L) body with
    | Ok got -> Assert.That(got, Is.EqualTo(box body))
    | Error e -> Assert.Fail e.Message

[<Test>]
let ``a Content-Length above MaxRequestBodyBytes is refused with the head`` () =
    let head =
        {
            Method = "POST"
            Target = "/"
            Form = Origin
            Version = Http11
            Headers = Headers.ofList [ "Host", "a"; "Content-Length", "1001" ]
        }

    let limits = Limits.Default.WithMaxRequestBodyBytes 1000L

    match Exchange.readRequestWithin limits head with
    | Error e ->
        Assert.That(e.Kind, Is.EqualTo ErrorKind.BodyTooLarge)
        Assert.That(e.StatusHint, Is.EqualTo 413)
    | Ok _ -> Assert.Fail "accepted"

    Assert.That(
        Exchange.readRequestWithin
            limits
            { head with
                Headers = Headers.ofList [ "Host", "a"; "Content-Length", "1000" ]
            }
        |> Result.isOk,
        Is.True
    )
