/// ClientConn against a real Kestrel server on 127.0.0.1.
module HttpUtil.Tests.KestrelTests

open System
open System.IO
open System.Net.Http
open System.Text
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open NUnit.Framework
open HttpUtil
open HttpUtil.Tests.Support

/// /n/{i}: "n=i"; /echo: the body back (Kestrel picks the framing); /stream: three flushed pieces
/// (chunked); /close: answers with Connection: close.
let private handler (ctx: HttpContext) : Task =
    task {
        let path = ctx.Request.Path.Value
        ctx.Response.Headers["X-Conn"] <- ctx.Connection.Id
        ctx.Response.Headers["X-Proto"] <- ctx.Request.Protocol

        if path.StartsWith "/n/" then
            do! ctx.Response.WriteAsync("n=" + path.Substring 3)
        elif path = "/echo" then
            use ms = new MemoryStream()
            do! ctx.Request.Body.CopyToAsync ms
            ctx.Response.Headers["X-Request-Chunked"] <- string (ctx.Request.Headers.TransferEncoding.Count > 0)
            do! ctx.Response.Body.WriteAsync(ms.ToArray(), 0, int ms.Length)
        elif path = "/stream" then
            for i in 1..3 do
                do! ctx.Response.WriteAsync(sprintf "piece%d;" i)
                do! ctx.Response.Body.FlushAsync()
        elif path = "/close" then
            ctx.Response.Headers.Connection <- "close"
            do! ctx.Response.WriteAsync "bye"
        else
            ctx.Response.StatusCode <- 404
    }

let private get (k: Kestrel) path =
    new HttpRequestMessage(HttpMethod.Get, k.Uri path)

[<Test>]
let ``1,000 requests on one keep-alive connection`` () =
    task {
        use k = Kestrel.Plain handler
        use! tcp = k.Connect()
        use client = new ClientConn(tcp.GetStream())
        let conns = Collections.Generic.HashSet<string>()

        for i in 1..1000 do
            let! resp = client.DoAsync(get k (sprintf "/n/%d" i))
            let! body = resp.Content.ReadAsStringAsync()
            Assert.That(body, Is.EqualTo(sprintf "n=%d" i))
            conns.Add(Seq.head (resp.Headers.GetValues "X-Conn")) |> ignore

        Assert.That(conns.Count, Is.EqualTo 1, "every response came over the same connection")
        Assert.That(client.Pending, Is.EqualTo 0)
    }
    |> sync

[<Test>]
let ``100 pipelined requests, then 100 reads in order`` () =
    task {
        use k = Kestrel.Plain handler
        use! tcp = k.Connect()
        use client = new ClientConn(tcp.GetStream())
        let requests = [| for i in 1..100 -> get k (sprintf "/n/%d" i) |]

        for r in requests do
            do! client.WriteAsync r

        Assert.That(client.Pending, Is.EqualTo 100)

        for i in 1..100 do
            let! resp = client.ReadAsync requests[i - 1] |> within 30.0
            let! body = resp.Content.ReadAsStringAsync()
            Assert.That(body, Is.EqualTo(sprintf "n=%d" i))

        Assert.That(client.Pending, Is.EqualTo 0)
    }
    |> sync

/// Content that does not know its length: sent chunked.
type private Unsized(bytes: byte[]) =
    inherit HttpContent()
    override _.SerializeToStreamAsync(s, _) = s.WriteAsync(bytes, 0, bytes.Length)

    override _.TryComputeLength(length) =
        length <- 0L
        false

    override _.CreateContentReadStreamAsync() =
        Task.FromResult(new MemoryStream(bytes) :> Stream)

[<Test>]
let ``chunked bodies both ways`` () =
    task {
        use k = Kestrel.Plain handler
        use! tcp = k.Connect()
        use client = new ClientConn(tcp.GetStream())
        let payload = Array.init 200_000 (fun i -> byte (i % 251))

        let req =
            new HttpRequestMessage(HttpMethod.Post, k.Uri "/echo", Content = new Unsized(payload))

        let! resp = client.DoAsync req
        Assert.That(resp.Headers.GetValues "X-Request-Chunked", Is.EqualTo(box [| "True" |]))
        let! echoed = resp.Content.ReadAsByteArrayAsync()
        Assert.That(echoed, Is.EqualTo(box payload))

        let! resp = client.DoAsync(get k "/stream")
        Assert.That(resp.Headers.TransferEncodingChunked, Is.EqualTo(Nullable true), "Kestrel streamed it chunked")
        let! body = resp.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "piece1;piece2;piece3;")
        Assert.That(resp.GetWireHead().Headers.Contains "Transfer-Encoding", Is.True)
    }
    |> sync

[<Test>]
let ``HTTP/1.0: the response ends the connection; the next write is PersistEof`` () =
    task {
        use k = Kestrel.Plain handler
        use! tcp = k.Connect()
        use client = new ClientConn(tcp.GetStream())
        let req = get k "/n/10"
        req.Version <- Version(1, 0)
        let! resp = client.DoAsync req
        Assert.That(resp.IsLastOnConnection(), Is.True)
        Assert.That(resp.Headers.GetValues "X-Proto", Is.EqualTo(box [| "HTTP/1.0" |]))
        let! body = resp.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "n=10")

        Assert.ThrowsAsync<PersistEofException>(fun () -> client.WriteAsync(get k "/n/11"))
        |> ignore
    }
    |> sync

[<Test>]
let ``Connection close from either side`` () =
    task {
        use k = Kestrel.Plain handler
        // The server says close.
        use! tcp = k.Connect()
        use client = new ClientConn(tcp.GetStream())
        let! resp = client.DoAsync(get k "/close")
        Assert.That(resp.IsLastOnConnection(), Is.True)
        let! body = resp.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "bye")

        Assert.ThrowsAsync<PersistEofException>(fun () -> client.DoAsync(get k "/n/1") :> Task)
        |> ignore

        // The client says close: its response is still read, further writes fail.
        use! tcp2 = k.Connect()
        use client2 = new ClientConn(tcp2.GetStream())
        let req = get k "/n/2"
        req.Headers.ConnectionClose <- true
        do! client2.WriteAsync req

        Assert.ThrowsAsync<PersistEofException>(fun () -> client2.WriteAsync(get k "/n/3"))
        |> ignore

        let! resp2 = client2.ReadAsync req
        let! body2 = resp2.Content.ReadAsStringAsync()
        Assert.That(body2, Is.EqualTo "n=2")
        Assert.That(resp2.IsLastOnConnection(), Is.True)
    }
    |> sync

[<Test>]
let ``ForProxy writes absolute-form targets, which Kestrel accepts`` () =
    task {
        use k = Kestrel.Plain handler
        use! tcp = k.Connect()
        use client = ClientConn.ForProxy(tcp.GetStream())
        let! resp = client.DoAsync(get k "/n/7?x=1")
        let! body = resp.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "n=7")
    }
    |> sync

[<Test>]
let ``an unread body is drained before the next response`` () =
    task {
        use k = Kestrel.Plain handler
        use! tcp = k.Connect()
        use client = new ClientConn(tcp.GetStream())
        let! _ = client.DoAsync(get k "/stream")
        let! resp = client.DoAsync(get k "/n/5")
        let! body = resp.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "n=5")
    }
    |> sync
