/// ServerConn on accepted sockets, serving curl and a raw socket that pipelines.
module HttpUtil.Tests.CurlTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Security.Cryptography
open System.Threading
open System.Threading.Tasks
open NUnit.Framework
open HttpUtil
open HttpUtil.Tests.Support

/// A tiny server: each accepted connection is served by one ServerConn until it ends.
type MiniServer(handler: HttpRequestMessage -> Task<HttpResponseMessage>) =
    let listener = new TcpListener(IPAddress.Loopback, 0)
    do listener.Start()
    let accepted = ref 0
    let failures = Collections.Concurrent.ConcurrentQueue<exn>()

    let serve (c: TcpClient) =
        task {
            use c = c
            use conn = new ServerConn(c.GetStream())
            let mutable go = true

            while go do
                try
                    let! req = conn.ReadAsync()
                    let! resp = handler req
                    do! conn.WriteAsync(req, resp)

                    if req.IsLastOnConnection() then
                        go <- false
                with
                | :? EndOfStreamException -> go <- false
                | ex ->
                    failures.Enqueue ex
                    go <- false
        }

    do
        task {
            try
                while true do
                    let! c = listener.AcceptTcpClientAsync()
                    Interlocked.Increment(&accepted.contents) |> ignore
                    serve c |> ignore
            with _ ->
                ()
        }
        |> ignore

    member _.Port = (listener.LocalEndpoint :?> IPEndPoint).Port

    member this.Url(path: string) =
        sprintf "http://127.0.0.1:%d%s" this.Port path

    member _.Accepted = accepted.Value
    member _.Failures = List.ofSeq failures

    interface IDisposable with
        member _.Dispose() = listener.Stop()

/// Answers "METHOD path version bodyLength sha256-prefix|".
let private describe (req: HttpRequestMessage) =
    task {
        let! body =
            match req.Content with
            | null -> Task.FromResult(Array.empty<byte>)
            | c -> c.ReadAsByteArrayAsync()

        let hash = Convert.ToHexString(SHA256.HashData body).Substring(0, 12)

        let text =
            sprintf "%s %s %O %d %s|" req.Method.Method (req.GetWireHead().Target) req.Version body.Length hash

        let resp = new HttpResponseMessage(HttpStatusCode.OK)
        resp.Content <- new StringContent(text)
        return resp
    }

let private curl args = run "curl" ("-sS" :: args)

[<Test>]
let ``curl: several URLs on one connection`` () =
    task {
        use server = new MiniServer(describe)
        let! code, out, err = curl [ server.Url "/a"; server.Url "/b?x=1"; server.Url "/c" ]
        Assert.That(code, Is.EqualTo 0, err)
        let empty = Convert.ToHexString(SHA256.HashData [||]).Substring(0, 12)

        Assert.That(out, Is.EqualTo(sprintf "GET /a 1.1 0 %s|GET /b?x=1 1.1 0 %s|GET /c 1.1 0 %s|" empty empty empty))

        Assert.That(server.Accepted, Is.EqualTo 1, "curl reused the connection")
        Assert.That(server.Failures, Is.Empty)
    }
    |> sync

[<Test>]
let ``curl --http1.0: each request ends its connection`` () =
    task {
        use server = new MiniServer(describe)
        let! code, out, err = curl [ "--http1.0"; server.Url "/a"; server.Url "/b" ]
        Assert.That(code, Is.EqualTo 0, err)
        Assert.That(out, Does.StartWith "GET /a 1.0 0 ")
        Assert.That(out, Does.Contain "|GET /b 1.0 0 ")
        Assert.That(server.Accepted, Is.EqualTo 2, "HTTP/1.0 without keep-alive: one connection per request")
        Assert.That(server.Failures, Is.Empty)
    }
    |> sync

let private payloadFile (size: int) =
    let path = Path.GetTempFileName()
    let bytes = Array.init size (fun i -> byte ((i * 7) % 256))
    File.WriteAllBytes(path, bytes)
    path, Convert.ToHexString(SHA256.HashData bytes).Substring(0, 12)

[<Test>]
let ``curl: a chunked upload`` () =
    task {
        use server = new MiniServer(describe)
        let path, hash = payloadFile 300_000

        try
            let! code, out, err =
                curl
                    [
                        "-H"
                        "Transfer-Encoding: chunked"
                        "--data-binary"
                        "@" + path
                        server.Url "/up"
                    ]

            Assert.That(code, Is.EqualTo 0, err)
            Assert.That(out, Is.EqualTo(sprintf "POST /up 1.1 300000 %s|" hash))
        finally
            File.Delete path
    }
    |> sync

[<Test>]
let ``curl: Expect 100-continue gets 100 Continue when the body is read`` () =
    task {
        use server = new MiniServer(describe)
        let path, hash = payloadFile 100_000

        try
            let! code, out, err =
                curl
                    [
                        "-v"
                        "--expect100-timeout"
                        "30"
                        "-H"
                        "Expect: 100-continue"
                        "--data-binary"
                        "@" + path
                        server.Url "/up"
                    ]

            Assert.That(code, Is.EqualTo 0, err)
            Assert.That(err, Does.Contain "HTTP/1.1 100 Continue")
            Assert.That(out, Is.EqualTo(sprintf "POST /up 1.1 100000 %s|" hash))
        finally
            File.Delete path
    }
    |> sync

[<Test>]
let ``a raw socket pipelining three requests in one write gets three responses in order`` () =
    task {
        use server = new MiniServer(describe)
        use tcp = new TcpClient()
        do! tcp.ConnectAsync(IPAddress.Loopback, server.Port)
        let s = tcp.GetStream()

        do!
            writeText
                s
                "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"

        let! bytes = readToEnd s |> within 10.0
        let bodies = PipeTests.parseResponses bytes |> List.map snd
        Assert.That(bodies.Length, Is.EqualTo 3)
        Assert.That(bodies[0], Does.StartWith "GET /1 1.1 0")
        Assert.That(bodies[1], Does.StartWith "POST /2 1.1 3")
        Assert.That(bodies[2], Does.StartWith "GET /3 1.1 0")
        Assert.That(server.Failures, Is.Empty)
    }
    |> sync

[<Test>]
let ``a bad connection does not stop the server from serving the next one`` () =
    task {
        use server = new MiniServer(describe)
        use bad = new TcpClient()
        do! bad.ConnectAsync(IPAddress.Loopback, server.Port)

        do!
            writeText
                (bad.GetStream())
                "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"

        let! _ = readToEnd (bad.GetStream()) |> within 10.0
        let! code, out, err = curl [ server.Url "/ok" ]
        Assert.That(code, Is.EqualTo 0, err)
        Assert.That(out, Does.StartWith "GET /ok 1.1 0")

        match server.Failures with
        | [ :? MalformedMessageException as ex ] ->
            Assert.That(ex.Kind, Is.EqualTo HttpUtil.Core.ErrorKind.TransferEncodingWithContentLength)
        | other -> Assert.Fail(sprintf "expected one smuggling rejection, got %A" other)
    }
    |> sync
