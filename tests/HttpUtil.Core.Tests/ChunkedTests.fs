module HttpUtil.Core.Tests.ChunkedTests

open System.Buffers
open NUnit.Framework
open HttpUtil.Core
open HttpUtil.Core.Tests.Gen

let private decodeAll settings (s: string) =
    decodeChunked settings true [ latin1 s ]

[<Test>]
let ``decodes chunks, extensions and trailers`` () =
    let s =
        "5;ext=1\r\nhello\r\n6 ; a = \"q\\\"t\" ; b\r\n world\r\n0\r\nX-Sum: 42\r\nX-Other: y\r\n\r\nNEXT"

    match decodeAll strict s with
    | Ok(body, trailers, left) ->
        Assert.That(text body, Is.EqualTo("hello world"))
        Assert.That(Headers.toList trailers, Is.EqualTo(box [ "X-Sum", "42"; "X-Other", "y" ]))
        Assert.That(left, Is.EqualTo(4), "bytes after the body stay unconsumed")
    | Error e -> Assert.Fail(string e)

[<Test>]
let ``an empty body is the last-chunk alone`` () =
    match decodeAll strict "0\r\n\r\n" with
    | Ok(body, trailers, 0) ->
        Assert.That(body, Is.Empty)
        Assert.That(trailers.Count, Is.EqualTo(0))
    | other -> Assert.Fail(sprintf "%A" other)

[<Test>]
let ``hex sizes in either case with leading zeros`` () =
    let s = "000A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n"

    match decodeAll strict s with
    | Ok(body, _, _) -> Assert.That(body.Length, Is.EqualTo(20))
    | Error e -> Assert.Fail(string e)

[<Test>]
let ``data comes back as slices of the input, without copying`` () =
    let bytes = latin1 "4\r\nabcd\r\n0\r\n\r\n"
    let input = ReadOnlySequence<byte>(bytes)

    match Chunked.decode strict true ChunkedDecoder.Start input with
    | Ok {
             Output = BodyData d
             Consumed = 7L
             Decoder = dec
         } ->
        Assert.That(d.Start.GetObject(), Is.SameAs(bytes))
        Assert.That(dec.BodyBytes, Is.EqualTo(4L))
        Assert.That(dec.Phase, Is.EqualTo(ChunkDataEnd))
    | other -> Assert.Fail(sprintf "%A" other)

[<Test>]
let ``a finished decoder reports the end again and consumes nothing`` () =
    let fin =
        { ChunkedDecoder.Start with
            Phase = Finished
        }

    match Chunked.decode strict true fin (ReadOnlySequence(latin1 "xyz")) with
    | Ok { Output = BodyEnd t; Consumed = 0L } -> Assert.That(t.Count, Is.EqualTo(0))
    | other -> Assert.Fail(sprintf "%A" other)

[<TestCase("x\r\n", "InvalidChunkSize", 0)>]
[<TestCase("\r\n", "InvalidChunkSize", 0)>]
[<TestCase("-1\r\n", "InvalidChunkSize", 0)>]
[<TestCase("0x5\r\nhello\r\n0\r\n\r\n", "InvalidChunkSize", 1)>]
[<TestCase(" 5\r\nhello\r\n0\r\n\r\n", "InvalidChunkSize", 0)>]
[<TestCase("5 \r\nhello\r\n0\r\n\r\n", "InvalidChunkSize", 2)>]
[<TestCase("5\r\nhello world\r\n0\r\n\r\n", "InvalidChunkTerminator", 8)>]
[<TestCase("5\r\nhelloXY0\r\n\r\n", "InvalidChunkTerminator", 8)>]
[<TestCase("5\r\nhello\n0\r\n\r\n", "InvalidChunkTerminator", 8)>]
[<TestCase("5\nhello\r\n0\r\n\r\n", "BareLF", 1)>]
[<TestCase("5\rhello\r\n0\r\n\r\n", "BareCR", 1)>]
[<TestCase("5;\r\nhello\r\n0\r\n\r\n", "InvalidChunkExtension", 2)>]
[<TestCase("5;a=\r\nhello\r\n0\r\n\r\n", "InvalidChunkExtension", 4)>]
[<TestCase("5;a=\"x\r\nhello\r\n0\r\n\r\n", "InvalidChunkExtension", 6)>]
[<TestCase("5;a\x00\r\nhello\r\n0\r\n\r\n", "InvalidChunkSize", 3)>]
[<TestCase("11111111111111111\r\n", "ChunkSizeTooLarge", 0)>]
[<TestCase("8000000000000000\r\n", "ChunkSizeTooLarge", 0)>]
[<TestCase("0\r\nX : y\r\n\r\n", "WhitespaceBeforeColon", 4)>]
[<TestCase("0\r\nX: y\r\n z\r\n\r\n", "ObsFold", 9)>]
[<TestCase("0\r\nX: y\rz\r\n\r\n", "BareCR", 7)>]
let ``chunked rejections name their kind and offset in the body`` (s: string, kind: string, offset: int64) =
    match decodeAll strict s with
    | Error e ->
        Assert.That(string e.Kind, Is.EqualTo(kind), e.Message)
        Assert.That(e.Offset, Is.EqualTo(offset), e.Message)
    | Ok v -> Assert.Fail(sprintf "expected %s, decoded %A" kind v)

[<Test>]
let ``the largest chunk-size that fits is accepted`` () =
    match Chunked.decode strict true ChunkedDecoder.Start (ReadOnlySequence(latin1 "7fffffffffffffff\r\n")) with
    | Ok { Decoder = { Phase = ChunkData n } } -> Assert.That(n, Is.EqualTo(System.Int64.MaxValue))
    | other -> Assert.Fail(sprintf "%A" other)

[<Test>]
let ``bare LF after chunk data is accepted only when allowed`` () =
    match decodeAll lenient "5\nhello\n0\n\n" with
    | Ok(body, _, _) -> Assert.That(text body, Is.EqualTo("hello"))
    | Error e -> Assert.Fail(string e)

[<Test>]
let ``a chunk-size with too many digits fails on MaxChunkSizeDigits`` () =
    let few =
        { strict with
            Limits =
                { Limits.Default with
                    MaxChunkSizeDigits = 4
                }
        }

    match decodeAll few "000001\r\nx\r\n0\r\n\r\n" with
    | Error e ->
        Assert.That(e.Kind, Is.EqualTo(ErrorKind.ChunkSizeTooLarge))
        Assert.That(e.Message, Does.Contain("MaxChunkSizeDigits"))
    | Ok v -> Assert.Fail(sprintf "%A" v)

[<Test>]
let ``an endless chunk-size line fails on MaxChunkLineLength without waiting for its end`` () =
    let s = "5;" + String.replicate 5000 "a"

    match Chunked.decode strict true ChunkedDecoder.Start (ReadOnlySequence(latin1 s)) with
    | Error e -> Assert.That(e.Kind, Is.EqualTo(ErrorKind.LineTooLong))
    | Ok v -> Assert.Fail(sprintf "%A" v)

[<Test>]
let ``a trailer section over MaxTrailerBytes is rejected`` () =
    let small =
        { strict with
            Limits =
                { Limits.Default with
                    MaxTrailerBytes = 64
                }
        }

    let s = "0\r\n" + String.replicate 10 "X-T: 0123456789\r\n"

    match decodeChunked small true [ latin1 s ] with
    | Error e -> Assert.That(e.Kind, Is.EqualTo(ErrorKind.TrailerTooLarge))
    | Ok v -> Assert.Fail(sprintf "%A" v)

[<Test>]
let ``truncated bodies ask for more instead of failing`` () =
    for s in
        [
            ""
            "5"
            "5\r"
            "5\r\nhel"
            "5\r\nhello"
            "5\r\nhello\r"
            "5\r\nhello\r\n0\r\n"
            "5\r\nhello\r\n0\r\nX: y\r\n"
        ] do
        match decodeChunked strict true [ latin1 s ] with
        | Error e -> Assert.That(e.Offset, Is.EqualTo(-1L), sprintf "%A: %O" s e)
        | Ok v -> Assert.Fail(sprintf "%A decoded %A" s v)

[<Test>]
let ``the encoder writes size lines in lower-case hex and skips empty pieces`` () =
    let body =
        Chunked.encode [ Array.create 26 0x61uy; [||]; latin1 "b" ] (Headers.ofList [ "X-T", "1" ])
        |> ok

    Assert.That(text body, Is.EqualTo("1a\r\n" + String.replicate 26 "a" + "\r\n1\r\nb\r\n0\r\nX-T: 1\r\n\r\n"))

[<Test>]
let ``the encoder refuses trailers that would inject`` () =
    Assert.That(Chunked.lastChunk (Headers.ofList [ "X", "a\r\nb: c" ]) |> kindOf, Is.EqualTo(ErrorKind.InvalidHead))

[<Test>]
let ``writeChunkHeader needs room and a positive size`` () =
    let big = Array.zeroCreate<byte> 18
    Assert.That(Chunked.writeChunkHeader (System.Int64.MaxValue, System.Span big), Is.EqualTo(18))
    Assert.That(text big, Is.EqualTo("7fffffffffffffff\r\n"))
    Assert.That(Chunked.writeChunkHeader (0L, System.Span big), Is.EqualTo(0))
    Assert.That(Chunked.writeChunkHeader (255L, System.Span(Array.zeroCreate<byte> 3)), Is.EqualTo(0))

[<Test>]
let ``a trailer section with more than MaxHeaderCount fields is rejected`` () =
    let few =
        { strict with
            Limits =
                { Limits.Default with
                    MaxHeaderCount = 2
                }
        }

    match decodeChunked few true [ latin1 "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n" ] with
    | Error e ->
        Assert.That(e.Kind, Is.EqualTo(ErrorKind.TooManyHeaders))
        Assert.That(e.Offset, Is.EqualTo(15L))
        Assert.That(e.Message, Does.Contain("more than 2 field lines"))
    | Ok v -> Assert.Fail(sprintf "%A" v)

    match decodeChunked few true [ latin1 "0\r\nA: 1\r\nB: 2\r\n\r\n" ] with
    | Ok(_, t, _) -> Assert.That(t.Count, Is.EqualTo(2))
    | Error e -> Assert.Fail(string e)
