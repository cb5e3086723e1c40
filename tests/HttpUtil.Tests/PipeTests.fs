/// ClientConn and ServerConn end to end over in-memory duplex pipes: FsCheck properties on
/// pipelining order, body round trips, and Go's persist/close/hijack semantics.
module HttpUtil.Tests.PipeTests

open System
open System.Buffers
open System.IO
open System.Net.Http
open System.Text
open System.Threading.Tasks
open NUnit.Framework
open FsCheck
open FsCheck.FSharp
open FsCheck.NUnit
open HttpUtil
open HttpUtil.Core
open HttpUtil.Tests.Support

/// Parses a stream of responses (Content-Length or chunked bodies) with the core.
let parseResponses (bytes: byte[]) =
    let mutable rest = ReadOnlySequence<byte>(bytes)
    let out = ResizeArray()

    while not rest.IsEmpty do
        match Parser.parseResponseHead ParserSettings.Default rest with
        | Ok(Complete(p, n)) ->
            rest <- rest.Slice n

            match Framing.responseBody "GET" p.Head with
            | Ok(Framing.ContentLength len) ->
                out.Add(p.Head, text (rest.Slice(0L, len).ToArray()))
                rest <- rest.Slice len
            | Ok Framing.Chunked ->
                let body = ResizeArray<byte>()
                let mutable d = ChunkedDecoder.Start
                let mutable fin = false

                while not fin do
                    match Chunked.decode ParserSettings.Default false d rest with
                    | Ok step ->
                        d <- step.Decoder
                        rest <- rest.Slice step.Consumed

                        match step.Output with
                        | BodyData data -> body.AddRange(data.ToArray())
                        | BodyEnd _ -> fin <- true
                        | NeedMoreData -> failwith "truncated chunked body"
                    | Error e -> failwithf "%A" e

                out.Add(p.Head, text (body.ToArray()))
            | other -> failwithf "unexpected framing %A" other
        | other -> failwithf "cannot parse responses: %A" other

    List.ofSeq out

let private request (i: int) =
    let body = String('b', i * 7)

    sprintf "POST /r%d HTTP/1.1\r\nHost: pipes\r\nContent-Length: %d\r\n\r\n%s" i body.Length body

let private answer (i: int) =
    let r = new HttpResponseMessage(Net.HttpStatusCode.OK)
    r.Headers.Add("X-Req", string i)
    r.Content <- new StringContent(sprintf "response %d" i)

    if i % 2 = 1 then
        r.Headers.TransferEncodingChunked <- true

    r

type Orders =
    static member Permutations() =
        Gen.choose (1, 16)
        |> Gen.bind (fun n -> Gen.shuffle [ 0 .. n - 1 ])
        |> Arb.fromGen

[<Property(MaxTest = 60, Arbitrary = [| typeof<Orders> |])>]
let ``ServerConn: pipelined requests answered in any order go out in request order`` (order: int[]) =
    task {
        let n = order.Length
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        // All requests in one burst.
        let burst = latin1 (String.concat "" [ for i in 0 .. n - 1 -> request i ])
        do! writeBytes clientEnd burst
        do! clientEnd.FlushAsync()
        let wire = readToEnd clientEnd
        let requests = ResizeArray()

        for i in 0 .. n - 1 do
            let! r = server.ReadAsync()
            Assert.That(r.RequestUri.AbsolutePath, Is.EqualTo(sprintf "/r%d" i))
            let! body = r.Content.ReadAsStringAsync()
            Assert.That(body.Length, Is.EqualTo(i * 7))
            requests.Add r

        Assert.That(server.Pending, Is.EqualTo n)
        // Handlers finish in the chosen order; each write waits for its turn.
        let writes = order |> Array.map (fun i -> server.WriteAsync(requests[i], answer i))
        do! Task.WhenAll(writes).WaitAsync(TimeSpan.FromSeconds 10.0)
        Assert.That(server.Pending, Is.EqualTo 0)
        do! server.DisposeAsync()
        let! bytes = wire |> within 10.0
        let responses = parseResponses bytes
        Assert.That(responses.Length, Is.EqualTo n)

        responses
        |> List.iteri (fun i (head, body) ->
            Assert.That(head.Headers.TryGetValue("X-Req") |> snd, Is.EqualTo(string i))
            Assert.That(body, Is.EqualTo(sprintf "response %d" i)))
    }
    |> sync

/// Serves on `conn` until the input ends: echoes the path in X-Req and the body back.
let private echoServer (conn: ServerConn) =
    task {
        let mutable go = true

        while go do
            try
                let! req = conn.ReadAsync()

                let! body =
                    match req.Content with
                    | null -> Task.FromResult(Array.empty<byte>)
                    | c -> c.ReadAsByteArrayAsync()

                let resp = new HttpResponseMessage(Net.HttpStatusCode.OK)
                resp.Headers.Add("X-Req", req.RequestUri.OriginalString)
                resp.Content <- new ByteArrayContent(body)

                let t = req.GetTrailers()

                if not (obj.ReferenceEquals(t, null)) then
                    resp.Headers.TransferEncodingChunked <- true

                    for f in t do
                        resp.TrailingHeaders.TryAddWithoutValidation(f.Name, f.Value) |> ignore

                do! conn.WriteAsync(req, resp)
            with
            | :? EndOfStreamException
            | :? PersistEofException -> go <- false
    }

[<Property(MaxTest = 60, Arbitrary = [| typeof<Orders> |])>]
let ``ClientConn: reads issued in a shuffled order each get their own response`` (order: int[]) =
    task {
        let n = order.Length
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        let serving = echoServer server
        use client = new ClientConn(clientEnd)

        let requests =
            [|
                for i in 0 .. n - 1 -> new HttpRequestMessage(HttpMethod.Get, sprintf "http://pipes/q%d" i)
            |]

        for r in requests do
            do! client.WriteAsync r

        Assert.That(client.Pending, Is.EqualTo n)
        let reads = order |> Array.map (fun i -> client.ReadAsync(requests[i]))
        let! responses = Task.WhenAll(reads) |> within 10.0

        Array.iteri
            (fun k (resp: HttpResponseMessage) ->
                let i = order[k]
                Assert.That(Seq.head (resp.Headers.GetValues "X-Req"), Is.EqualTo(sprintf "http://pipes/q%d" i))
                Assert.That(resp.RequestMessage, Is.SameAs(requests[i])))
            responses

        Assert.That(client.Pending, Is.EqualTo 0)
        client.Close()
        do! serving |> within 10.0
    }
    |> sync

/// A stream that does not know its length, so the content is sent chunked.
type Unsized(bytes: byte[], piece: int) =
    inherit MemoryStream(bytes)
    override _.CanSeek = false
    override this.Read(b: byte[], o, c) = base.Read(b, o, min c piece)

    override this.ReadAsync(m: Memory<byte>, ct) =
        base.ReadAsync(m.Slice(0, min m.Length piece), ct)

[<Property(MaxTest = 100)>]
let ``bodies round-trip through ClientConn and ServerConn, sized or chunked``
    (body: byte[])
    (sized: bool)
    (piece: PositiveInt)
    =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        let serving = echoServer server
        use client = new ClientConn(clientEnd)
        let req = new HttpRequestMessage(HttpMethod.Post, "http://pipes/echo")

        req.Content <-
            if sized then
                new ByteArrayContent(body) :> HttpContent
            else
                new StreamContent(new Unsized(body, piece.Get))

        let! resp = client.DoAsync req |> within 10.0
        let! echoed = resp.Content.ReadAsByteArrayAsync() |> within 10.0
        Assert.That(echoed, Is.EqualTo(box body))
        let head = resp.GetWireHead()
        Assert.That(head, Is.Not.Null)
        client.Close()
        do! serving |> within 10.0
    }
    |> sync

[<Test>]
let ``ServerConn: echoing a chunked request with trailers puts them in the response trailer section`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)

        let msg =
            "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n"

        do! writeText clientEnd (msg)
        do! clientEnd.FlushAsync()
        let wire = readToEnd clientEnd
        let! req = server.ReadAsync() |> within 10.0
        Assert.That(req.GetTrailers(), Is.Null, "no trailers before the body is read")
        let! body = req.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "abc")
        Assert.That(req.GetTrailers().GetValues("X-Sum"), Is.EqualTo(box [| "42" |]))
        let resp = new HttpResponseMessage(Net.HttpStatusCode.OK)
        resp.Content <- new StringContent("abc")
        resp.Headers.TransferEncodingChunked <- true
        resp.TrailingHeaders.Add("X-Sum", "42")
        do! server.WriteAsync(req, resp)
        server.Close()
        let! bytes = wire |> within 10.0
        let s = text bytes
        Assert.That(s, Does.EndWith("\r\n0\r\nX-Sum: 42\r\n\r\n"))
        Assert.That(parseResponses bytes |> List.map snd, Is.EqualTo(box [ "abc" ]))
    }
    |> sync

[<Test>]
let ``ClientConn: chunked response trailers land in TrailingHeaders once the body is read`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()

        do!
            writeText
                serverEnd
                ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n")

        do! serverEnd.FlushAsync()
        use client = new ClientConn(clientEnd)

        let! resp =
            client.DoAsync(new HttpRequestMessage(HttpMethod.Get, "http://x/"))
            |> within 10.0

        Assert.That(resp.TrailingHeaders.Contains "X-Sum", Is.False)
        let! body = resp.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "abc")
        Assert.That(resp.TrailingHeaders.GetValues "X-Sum", Is.EqualTo(box [| "42" |]))
    }
    |> sync

// ---------------------------------------------------------------------------------------------
// Go's persist-EOF, Close and Hijack semantics.

let private get path =
    new HttpRequestMessage(HttpMethod.Get, "http://x" + path)

[<Test>]
let ``ServerConn: after Close, WriteAsync throws ConnectionClosedException and ReadAsync ObjectDisposedException`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        do! writeText clientEnd ("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        do! clientEnd.FlushAsync()
        let! req = server.ReadAsync()
        server.Close()
        server.Close() // idempotent
        let resp = new HttpResponseMessage(Net.HttpStatusCode.OK)

        Assert.ThrowsAsync<ConnectionClosedException>(fun () -> server.WriteAsync(req, resp))
        |> ignore

        Assert.ThrowsAsync<ObjectDisposedException>(fun () -> server.ReadAsync())
        |> ignore

        Assert.ThrowsAsync<ObjectDisposedException>(fun () -> server.HijackAsync().AsTask() :> Task)
        |> ignore
    }
    |> sync

[<Test>]
let ``ClientConn: after Close, every call throws ObjectDisposedException; after Hijack too`` () =
    task {
        let clientEnd, _ = duplexPair ()
        let client = new ClientConn(clientEnd)
        client.Close()

        Assert.ThrowsAsync<ObjectDisposedException>(fun () -> client.WriteAsync(get "/"))
        |> ignore

        Assert.ThrowsAsync<PipelineException>(fun () -> client.ReadAsync(get "/") :> Task)
        |> ignore

        let clientEnd2, _ = duplexPair ()
        let client2 = new ClientConn(clientEnd2)
        let! h = client2.HijackAsync()
        Assert.That(h.Stream, Is.SameAs clientEnd2)

        Assert.ThrowsAsync<ObjectDisposedException>(fun () -> client2.WriteAsync(get "/"))
        |> ignore

        client2.Close() // does nothing after Hijack
        Assert.That(h.Stream.CanWrite, Is.True, "Close after Hijack leaves the stream alone")
    }
    |> sync

[<Test>]
let ``ServerConn: Hijack hands over the pipelined bytes not read yet`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        do! writeText clientEnd ("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\ntunnel")
        do! clientEnd.FlushAsync()
        let! _ = server.ReadAsync()
        let! h = server.HijackAsync()
        let! rr = h.Reader.ReadAtLeastAsync(20)
        Assert.That(text (rr.Buffer.ToArray()), Does.StartWith "GET /b HTTP/1.1")
        h.Reader.AdvanceTo(rr.Buffer.End)
    }
    |> sync

[<Test>]
let ``ServerConn: a Connection close request is returned marked, answered with close, then PersistEof`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)

        do!
            writeText
                clientEnd
                ("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")

        do! clientEnd.FlushAsync()
        let wire = readToEnd clientEnd
        let! req = server.ReadAsync()
        Assert.That(req.IsLastOnConnection(), Is.True)

        Assert.ThrowsAsync<PersistEofException>(fun () -> server.ReadAsync() :> Task)
        |> ignore

        let resp = new HttpResponseMessage(Net.HttpStatusCode.OK)
        resp.Content <- new StringContent("bye")
        do! server.WriteAsync(req, resp)
        server.Close()
        let! bytes = wire |> within 10.0
        let responses = parseResponses bytes
        Assert.That(responses.Length, Is.EqualTo 1)
        Assert.That(Headers.hasConnectionToken "close" (fst responses.Head).Headers, Is.True)
    }
    |> sync

[<Test>]
let ``ServerConn: HTTP/1.0 request gets a close-delimited answer for an unknown length`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        do! writeText clientEnd ("GET /a HTTP/1.0\r\n\r\n")
        do! clientEnd.FlushAsync()
        let wire = readToEnd clientEnd
        let! req = server.ReadAsync()
        Assert.That(req.Version, Is.EqualTo(Version(1, 0)))
        Assert.That(req.IsLastOnConnection(), Is.True)
        Assert.That(req.RequestUri.IsAbsoluteUri, Is.False, "no Host: a relative URI")
        let resp = new HttpResponseMessage(Net.HttpStatusCode.OK)
        resp.Content <- new StreamContent(new Unsized(Encoding.ASCII.GetBytes "hello", 2))
        do! server.WriteAsync(req, resp)
        server.Close()
        let! bytes = wire |> within 10.0
        let s = text bytes
        Assert.That(s, Does.Not.Contain "Transfer-Encoding")
        Assert.That(s, Does.Contain "Connection: close")
        Assert.That(s, Does.EndWith "\r\n\r\nhello")
    }
    |> sync

[<Test>]
let ``ServerConn: a clean end of input is EndOfStreamException, a torn head is PersistEofException`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        clientEnd.Dispose()

        Assert.ThrowsAsync<EndOfStreamException>(fun () -> server.ReadAsync() :> Task)
        |> ignore

        Assert.ThrowsAsync<EndOfStreamException>((fun () -> server.ReadAsync() :> Task), "sticky")
        |> ignore

        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        do! writeText clientEnd ("GET /a HTTP/1.1\r\nHo")
        clientEnd.Dispose()

        Assert.ThrowsAsync<PersistEofException>(fun () -> server.ReadAsync() :> Task)
        |> ignore
    }
    |> sync

[<Test>]
let ``wire heads keep order, casing and the raw target; a write for an unknown request is ErrPipeline`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        let raw = "GET /a%2Fb/../c?q=1 HTTP/1.1\r\nhost: x\r\nX-B: 2\r\nx-a: 1\r\n\r\n"
        do! writeText clientEnd (raw)
        do! clientEnd.FlushAsync()
        let! req = server.ReadAsync()
        Assert.That(req.GetRawHead(), Is.EqualTo raw)
        let head = req.GetWireHead()
        Assert.That(head.Target, Is.EqualTo "/a%2Fb/../c?q=1")
        Assert.That(head.Headers |> Seq.map (fun f -> f.Name) |> List.ofSeq, Is.EqualTo(box [ "host"; "X-B"; "x-a" ]))
        Assert.That(req.RequestUri.Host, Is.EqualTo "x")
        let stranger = get "/"

        Assert.ThrowsAsync<PipelineException>(fun () -> server.WriteAsync(stranger, new HttpResponseMessage()))
        |> ignore
        // The real request can still be answered, once only.
        do! server.WriteAsync(req, new HttpResponseMessage())

        Assert.ThrowsAsync<PipelineException>(fun () -> server.WriteAsync(req, new HttpResponseMessage()))
        |> ignore
    }
    |> sync

[<Test>]
let ``ClientConn: 1xx responses are read past and listed; 103 then 200`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()

        do!
            writeText
                serverEnd
                ("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        do! serverEnd.FlushAsync()
        use client = new ClientConn(clientEnd)
        let! resp = client.DoAsync(get "/") |> within 10.0
        Assert.That(int resp.StatusCode, Is.EqualTo 200)
        Assert.That(resp.GetInterimResponses() |> Seq.map (fun h -> h.Status) |> List.ofSeq, Is.EqualTo(box [ 103 ]))
        let! body = resp.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "ok")
    }
    |> sync

[<Test>]
let ``an invalid response is refused before anything is written, and the request can still be answered`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        do! writeText clientEnd ("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        do! clientEnd.FlushAsync()
        let! req = server.ReadAsync()
        let bad = new HttpResponseMessage(Net.HttpStatusCode.OK)
        bad.Headers.TryAddWithoutValidation("X-Evil", "a\r\nSet-Cookie: x=1") |> ignore

        Assert.ThrowsAsync<ArgumentException>(fun () -> server.WriteAsync(req, bad))
        |> ignore

        Assert.That(server.Pending, Is.EqualTo 1)
        do! server.WriteAsync(req, new HttpResponseMessage())
        Assert.That(server.Pending, Is.EqualTo 0)
    }
    |> sync

[<Test>]
let ``a body of many small chunks fills a large read instead of returning one chunk per call`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let chunks = String.replicate 1000 "1\r\nx\r\n"

        do!
            writeText
                clientEnd
                ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + chunks
                 + "0\r\n\r\n")

        let server = new ServerConn(serverEnd)
        let! req = server.ReadAsync()
        let body = req.Content.ReadAsStream()
        let buffer = Array.zeroCreate<byte>(64 * 1024)
        let mutable total = 0
        let mutable reads = 0
        let mutable n = -1

        while n <> 0 do
            let! got = body.ReadAsync(buffer, 0, buffer.Length)
            n <- got
            total <- total + got
            reads <- reads + 1

        Assert.That(total, Is.EqualTo 1000)
        // The bytes arrive in a few pipe reads; each body read takes all the chunks buffered.
        Assert.That(reads, Is.LessThan 20, "one chunk per read would take 1,001 reads")
    }
    |> sync
