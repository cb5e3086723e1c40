/// Faults found by trying hostile raw servers and clients on 127.0.0.1, each fixed with the move to
/// the redesigned core and shell: interim floods, close that dropped written bytes, the exception type
/// of a body cut short, the retry after a reset, and the Host rules on both sides.
module HttpUtil.Tests.FaultTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Threading.Tasks
open NUnit.Framework
open HttpUtil
open HttpUtil.Core
open HttpUtil.Tests.Support

let private get (uri: string) =
    new HttpRequestMessage(HttpMethod.Get, Uri(uri, UriKind.RelativeOrAbsolute))

/// Writes `head` over and over until the peer stops reading (at most `times` heads).
let private flood (s: NetworkStream) (head: string) (times: int) =
    task {
        let bytes = latin1 head
        let mutable i = 0

        while i < times do
            do! s.WriteAsync(bytes, 0, bytes.Length)
            i <- i + 1
    }

[<Test>]
let ``a server that sends 102 Processing forever is refused after MaxInterimResponses`` () =
    task {
        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! flood s "HTTP/1.1 102 Processing\r\n\r\n" 100_000
                })

        use tcp = new TcpClient()
        do! tcp.ConnectAsync(IPAddress.Loopback, server.Port)
        use client = new ClientConn(tcp.GetStream())

        let ex =
            Assert.ThrowsAsync<MalformedMessageException>(fun () -> client.DoAsync(get "http://x/") :> Task)

        Assert.That(ex.Kind, Is.EqualTo ErrorKind.TooManyInterimResponses)
        Assert.That(ex.Message, Does.Contain "MaxInterimResponses")
    }
    |> sync

[<Test>]
let ``big 103 heads count against MaxHeadBytes in all, through Transport too`` () =
    task {
        let bigHint =
            "HTTP/1.1 103 Early Hints\r\nLink: </"
            + String('a', 6000)
            + ">; rel=preload\r\n\r\n"

        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! flood s bigHint 10_000
                })

        use client = new HttpClient(new Transport())

        let ex =
            Assert.ThrowsAsync<HttpRequestException>(fun () -> client.GetAsync(server.Uri "/") :> Task)

        let inner = ex.InnerException :?> MalformedMessageException
        Assert.That(inner.Kind, Is.EqualTo ErrorKind.TooManyInterimResponses)
        Assert.That(inner.Message, Does.Contain "MaxHeadBytes")
    }
    |> sync

[<Test>]
let ``a body cut short and a body reset both reach HttpClient as HttpRequestException around an IOException`` () =
    task {
        use server =
            new ScriptedServer(fun i s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                    do! writeText s (String('x', 50))

                    if i = 1 then
                        // The second connection is reset instead of closed.
                        let socket = s.Socket
                        socket.LingerState <- LingerOption(true, 0)
                        socket.Close()
                })

        use client = new HttpClient(new Transport())

        for _ in 1..2 do
            let ex =
                Assert.ThrowsAsync<HttpRequestException>(fun () -> client.GetStringAsync(server.Uri "/") :> Task)

            Assert.That(ex.InnerException, Is.InstanceOf<IOException>(), ex.ToString())
    }
    |> sync

[<Test>]
let ``a reused idle connection reset before any response byte is retried on a new one`` () =
    task {
        use server =
            new ScriptedServer(fun i s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"

                    if i = 0 then
                        // The next request on this connection is met with a reset, as when a server
                        // drops an idle connection just as a request goes out.
                        let! _ = readHead s
                        let socket = s.Socket
                        socket.LingerState <- LingerOption(true, 0)
                        socket.Close()
                    else
                        let! _ = readHead s
                        ()
                })

        use client = new HttpClient(new Transport())
        let! a = client.GetStringAsync(server.Uri "/a")
        let! b = client.GetStringAsync(server.Uri "/b")
        Assert.That((a, b), Is.EqualTo(("first", "first")))
        Assert.That(server.Connections, Is.EqualTo 2, "the retry went out on a new connection")

        // A POST with a streamed body is not retried: its body cannot be sent again.
        use server2 =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    let! _ = readHead s
                    let socket = s.Socket
                    socket.LingerState <- LingerOption(true, 0)
                    socket.Close()
                })

        let! _ = client.GetStringAsync(server2.Uri "/a")
        let streamed = new StreamContent(new MemoryStream(Encoding.ASCII.GetBytes "body"))

        Assert.ThrowsAsync<HttpRequestException>(fun () -> client.PostAsync(server2.Uri "/b", streamed) :> Task)
        |> ignore
    }
    |> sync

[<Test>]
let ``Close returns at once; CloseAsync sends what was written before closing, and says when it could not`` () =
    task {
        // A response the peer reads only after the close has begun still arrives whole.
        let! (clientTcp: TcpClient), (serverTcp: TcpClient) = socketPair ()
        use _c = clientTcp
        let server = new ServerConn(serverTcp.GetStream())
        do! writeText (clientTcp.GetStream()) "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        let! req = server.ReadAsync()
        let body = String('z', 1_000_000)

        let resp =
            new HttpResponseMessage(HttpStatusCode.OK, Content = new StringContent(body))

        let writing = server.WriteAsync(req, resp)
        let reading = readToEnd (clientTcp.GetStream())
        do! writing
        let closing = server.CloseAsync()
        let! got = reading
        do! closing
        let got = text got
        Assert.That(got, Does.StartWith "HTTP/1.1 200 OK")
        Assert.That(got, Does.EndWith body, "every byte written before the close was sent")

        // A peer that never reads: Close returns while the bytes are still unsent, and CloseAsync
        // reports them once FlushTimeout has passed.
        let! (clientTcp2: TcpClient), (serverTcp2: TcpClient) = socketPair ()
        use _c2 = clientTcp2
        clientTcp2.ReceiveBufferSize <- 4096

        let server2 =
            new ServerConn(serverTcp2.GetStream(), FlushTimeout = TimeSpan.FromMilliseconds 300.0)

        do! writeText (clientTcp2.GetStream()) "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        let! req2 = server2.ReadAsync()

        let big =
            new HttpResponseMessage(
                HttpStatusCode.OK,
                Content = new ByteArrayContent(Array.zeroCreate (8 * 1024 * 1024))
            )

        let writing2 = server2.WriteAsync(req2, big)
        server2.Close()
        let closed = server2.CloseAsync()
        Assert.That(closed.IsCompleted, Is.False, "Close did not wait for the unsent bytes")
        let ex = Assert.ThrowsAsync<IOException>(fun () -> closed)
        Assert.That(ex.Message, Does.Contain "FlushTimeout")
        Assert.CatchAsync(fun () -> writing2) |> ignore
    }
    |> sync

[<TestCase("GET / HTTP/1.1\r\n\r\n", "without Host")>]
[<TestCase("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "2 Host fields")>]
[<TestCase("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "not uri-host")>]
[<TestCase("GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", "not uri-host")>]
[<TestCase("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "not uri-host")>]
let ``ServerConn refuses a request whose Host breaks RFC 9112 section 3.2, with a 400 hint``
    (raw: string, says: string)
    =
    task {
        let clientEnd, serverEnd = duplexPair ()
        do! writeText clientEnd raw
        let server = new ServerConn(serverEnd)

        let ex =
            Assert.ThrowsAsync<MalformedMessageException>(fun () -> server.ReadAsync() :> Task)

        Assert.That(ex.Kind, Is.EqualTo ErrorKind.InvalidHost)
        Assert.That(ex.Error.StatusHint, Is.EqualTo 400)
        Assert.That(ex.Message, Does.Contain says)
    }
    |> sync

[<TestCase("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")>]
[<TestCase("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n")>]
[<TestCase("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")>]
[<TestCase("GET / HTTP/1.1\r\nHost: \r\n\r\n")>]
[<TestCase("GET / HTTP/1.0\r\n\r\n")>]
let ``ServerConn accepts valid Hosts, an empty one, and HTTP/1.0 without one`` (raw: string) =
    task {
        let clientEnd, serverEnd = duplexPair ()
        do! writeText clientEnd raw
        let server = new ServerConn(serverEnd)
        let! req = server.ReadAsync()
        Assert.That(req.Method, Is.EqualTo HttpMethod.Get)
    }
    |> sync

[<Test>]
let ``ClientConn: an HTTP/1.1 request with a relative URI needs a Host, and gets the one given`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let client = new ClientConn(clientEnd)

        let ex =
            Assert.ThrowsAsync<ArgumentException>(fun () -> client.WriteAsync(get "/x"))

        Assert.That(ex.Message, Does.Contain "Host")
        Assert.That(client.Pending, Is.EqualTo 0, "nothing was written")

        let req = get "/x"
        req.Headers.Host <- "example.com"
        do! client.WriteAsync req
        let! head = readHead serverEnd
        Assert.That(head, Is.EqualTo "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
    }
    |> sync
