/// HttpDump (Go's DumpRequest, DumpRequestOut, DumpResponse) and ChunkedCoding (NewChunkedReader/Writer): exact bytes,
/// bodies left readable, and round trips.
module HttpUtil.Tests.DumpTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Text
open System.Threading
open System.Threading.Tasks
open NUnit.Framework
open FsCheck
open FsCheck.FSharp
open FsCheck.NUnit
open HttpUtil
open HttpUtil.Core
open HttpUtil.Tests.Support

let private ascii (b: byte[]) = Encoding.Latin1.GetString b

[<Test>]
let ``DumpRequestOut shows the head a client writes, the body framed, and leaves the content sendable`` () =
    task {
        use request =
            new HttpRequestMessage(
                HttpMethod.Post,
                "http://example.test:8080/upload?x=1",
                Content = new StringContent("hi")
            )

        request.Headers.Add("X-Trace", "on")
        let! head = HttpDump.DumpRequestOutAsync(request, false)
        let! whole = HttpDump.DumpRequestOutAsync(request, true)

        let expectedHead =
            "POST /upload?x=1 HTTP/1.1\r\nHost: example.test:8080\r\nX-Trace: on\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\n"

        Assert.That(ascii head, Is.EqualTo expectedHead)
        Assert.That(ascii whole, Is.EqualTo(expectedHead + "hi"))
        let! again = request.Content.ReadAsStringAsync()
        Assert.That(again, Is.EqualTo "hi", "the content can still be read")
    }
    |> sync

[<Test>]
let ``DumpRequestOut frames content sent chunked as chunks, with the request's trailers`` () =
    task {
        use request =
            new HttpRequestMessage(
                HttpMethod.Put,
                "http://example.test/f",
                Content = new StreamContent(new MemoryStream(latin1 "abc"))
            )

        request.Headers.TransferEncodingChunked <- true
        request.WithTrailers(fun () -> Headers.Of(struct ("X-Sum", "7"))) |> ignore
        let! whole = HttpDump.DumpRequestOutAsync(request, true)

        Assert.That(
            ascii whole,
            Is.EqualTo(
                "PUT /f HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 7\r\n\r\n"
            )
        )
    }
    |> sync

[<Test>]
let ``DumpRequest shows a request read by ServerConn exactly as it arrived, chunks and trailers included`` () =
    task {
        let wire =
            "POST /in HTTP/1.1\r\nhost: a.test\r\nx-lower:   spaced\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nX-T: 1\r\n\r\n"

        let client, server = duplexPair ()
        use client = client
        use conn = new ServerConn(server)
        do! writeText client wire
        let! request = conn.ReadAsync()
        let! dumped = HttpDump.DumpRequestAsync(request, true)
        Assert.That(ascii dumped, Is.EqualTo wire)
        let! body = request.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "body", "the body is still readable after the dump")
    }
    |> sync

[<Test>]
let ``DumpResponse shows a response read by ClientConn exactly as sent, with or without the body, and leaves it readable``
    ()
    =
    task {
        let head =
            "HTTP/1.1 200 OK\r\nServer:  odd   spacing\r\nset-cookie: a=1\r\nContent-Length: 5\r\n\r\n"

        let client, server = duplexPair ()
        use server = server
        use conn = new ClientConn(client)
        use request = new HttpRequestMessage(HttpMethod.Get, "http://a.test/")
        do! conn.WriteAsync request
        let! _ = readHead server
        do! writeText server (head + "hello")
        let! response = conn.ReadAsync request
        let! headOnly = HttpDump.DumpResponseAsync(response, false)
        Assert.That(ascii headOnly, Is.EqualTo head)
        let! whole = HttpDump.DumpResponseAsync(response, true)
        Assert.That(ascii whole, Is.EqualTo(head + "hello"))
        let! body = response.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "hello")
    }
    |> sync

[<Test>]
let ``DumpResponse of a response built in code shows what ServerConn writes for it`` () =
    task {
        use response =
            new HttpResponseMessage(HttpStatusCode.NotFound, Content = new StringContent("gone"))

        response.RequestMessage <- new HttpRequestMessage(HttpMethod.Get, "http://a.test/")
        let! dumped = HttpDump.DumpResponseAsync(response, true)

        Assert.That(
            ascii dumped,
            Is.EqualTo
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\n\r\ngone"
        )
    }
    |> sync

/// Data written through NewChunkedWriter in pieces, with trailers.
type ChunkedCase =
    {
        Pieces: byte[] list
        Trailers: (string * string) list
        ReadSizes: int list
    }

type ChunkedArbitraries =
    static member Case() =
        gen {
            let! pieces = Gen.listOf (Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte))
            let name = Gen.elements [ "X-A"; "X-Checksum"; "Expires" ]
            let value = Gen.elements [ "1"; "abc"; "a b" ]
            let! trailers = Gen.listOf (Gen.zip name value) |> Gen.map (List.truncate 3)
            let! sizes = Gen.listOf (Gen.choose (1, 64))

            return
                {
                    Pieces = pieces
                    Trailers = trailers
                    ReadSizes = sizes
                }
        }
        |> Arb.fromGen

let private roundTrip (case: ChunkedCase) =
    task {
        use wire = new MemoryStream()

        do!
            task {
                use writer = ChunkedCoding.NewChunkedWriter(wire)

                for p in case.Pieces do
                    do! writer.WriteAsync(p, 0, p.Length)

                do! writer.CompleteAsync(Headers.ofList case.Trailers)
            }

        let encoded = wire.ToArray()
        // The core's own encoder writes the same bytes for the same pieces.
        let core =
            Chunked.encode (case.Pieces |> Seq.filter (fun p -> p.Length > 0)) (Headers.ofList case.Trailers)

        wire.Position <- 0L
        use reader = ChunkedCoding.NewChunkedReader(wire)
        let out = new MemoryStream()
        let mutable sizes = if case.ReadSizes.IsEmpty then [ 7 ] else case.ReadSizes
        let mutable go = true

        while go do
            let size = List.head sizes
            sizes <- (List.tail sizes) @ [ size ]
            let buffer = Array.zeroCreate<byte> size
            let! n = reader.ReadAsync(buffer, 0, size)

            if n = 0 then go <- false else out.Write(buffer, 0, n)

        return encoded, core, out.ToArray(), reader.Trailers
    }

[<Property(MaxTest = 200, Arbitrary = [| typeof<ChunkedArbitraries> |])>]
let ``NewChunkedWriter then NewChunkedReader gives back the data and trailers, whatever the read sizes``
    (case: ChunkedCase)
    =
    let encoded, core, data, trailers = (roundTrip case).GetAwaiter().GetResult()
    let expected = Array.concat case.Pieces

    data = expected
    && core = Ok encoded
    && (Headers.toList trailers) = case.Trailers

[<Test>]
let ``NewChunkedReader refuses a bad chunk size and a body cut short with MalformedMessageException`` () =
    task {
        for bad in [ "zz\r\nab\r\n0\r\n\r\n"; "5\r\nabc" ] do
            use reader = ChunkedCoding.NewChunkedReader(new MemoryStream(latin1 bad))

            let! error =
                task {
                    try
                        let! _ = countToEnd 16 reader
                        return None
                    with :? MalformedMessageException as e ->
                        return Some e
                }

            Assert.That(error.IsSome, Is.True, bad)
    }
    |> sync
