/// Malformed, truncated, oversized and hostile input: a clear exception of the right type, no
/// hang, and the connection marked broken.
module HttpUtil.Tests.BadInputTests

open System
open System.IO
open System.Net.Http
open System.Net.Sockets
open System.Threading
open System.Threading.Tasks
open NUnit.Framework
open HttpUtil
open HttpUtil.Core
open HttpUtil.Tests.Support

/// A ServerConn whose peer sent `raw` and then closed its side.
let private serverFed (raw: string) =
    task {
        let clientEnd, serverEnd = duplexPair ()
        do! writeText clientEnd (raw)
        do! clientEnd.FlushAsync()
        clientEnd.Dispose()
        return new ServerConn(serverEnd)
    }

/// A ClientConn whose peer answers with `raw` and then closes.
let private clientFed (raw: string) =
    task {
        let clientEnd, serverEnd = duplexPair ()
        do! writeText serverEnd (raw)
        do! serverEnd.FlushAsync()
        serverEnd.Dispose()
        return new ClientConn(clientEnd)
    }

let private malformed (f: unit -> Task) =
    let ex = Assert.ThrowsAsync<MalformedMessageException>(fun () -> f ())
    ex

let private readReq (s: ServerConn) () = s.ReadAsync() :> Task

/// A body read through HttpContent: the failure arrives as HttpRequestException around the
/// MalformedMessageException (an IOException), as SocketsHttpHandler's do around HttpIOException.
let private bodyMalformed (f: unit -> Task) =
    let ex = Assert.ThrowsAsync<HttpRequestException>(fun () -> f ())
    Assert.That(ex.InnerException, Is.InstanceOf<MalformedMessageException>())
    Assert.That(ex.InnerException, Is.InstanceOf<IOException>())
    ex.InnerException :?> MalformedMessageException

[<TestCase("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ErrorKind.InvalidMethod, 0L)>]
[<TestCase("GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", ErrorKind.WhitespaceBeforeColon, 28L)>]
[<TestCase("GET / HTTP/1.1\rHost: x\r\n\r\n", ErrorKind.BareCR, 14L)>]
[<TestCase("GET / HTTP/1.1\nHost: x\n\n", ErrorKind.BareLF, 14L)>]
[<TestCase("GET / HTTP/2.0\r\n\r\n", ErrorKind.UnsupportedVersion, 6L)>]
[<TestCase("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           ErrorKind.TransferEncodingWithContentLength,
           0L)>]
[<TestCase("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
           ErrorKind.DifferingContentLengths,
           0L)>]
[<TestCase("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", ErrorKind.UnsupportedTransferCoding, 0L)>]
let ``ServerConn: a bad request head throws MalformedMessageException with kind and offset, and sticks``
    (raw: string, kind: ErrorKind, offset: int64)
    =
    task {
        let! server = serverFed raw
        let ex = malformed (readReq server)
        Assert.That(ex.Kind, Is.EqualTo kind)
        Assert.That(ex.Offset, Is.EqualTo offset)
        Assert.That(ex.Message, Does.Contain(string kind))
        // The read side is broken: the next read fails the same way, at once.
        let again = malformed (readReq server)
        Assert.That(again.Kind, Is.EqualTo kind)
    }
    |> sync

[<Test>]
let ``ServerConn: a huge head is HeadTooLarge, without reading it whole`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)

        let writer =
            task {
                do! writeText clientEnd ("GET / HTTP/1.1\r\n")
                let line = latin1 ("X-Filler: " + String('a', 1000) + "\r\n")

                try
                    for _ in 1..100 do
                        do! writeBytes clientEnd line
                        do! clientEnd.FlushAsync()
                with _ ->
                    ()
            }

        let ex = malformed (readReq server)
        Assert.That(ex.Kind, Is.EqualTo ErrorKind.HeadTooLarge)
        server.Close()
        do! writer |> within 10.0
    }
    |> sync

[<Test>]
let ``truncated and broken bodies throw on read and break the connection`` () =
    task {
        // Content-Length promises 10, 3 arrive, then the peer closes.
        let! server = serverFed "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
        let! req = server.ReadAsync()
        let ex = bodyMalformed (fun () -> req.Content.ReadAsStringAsync() :> Task)
        Assert.That(ex.Kind, Is.EqualTo ErrorKind.UnexpectedEnd)
        Assert.That(ex.Offset, Is.EqualTo 3L)
        Assert.That((malformed (readReq server)).Kind, Is.EqualTo ErrorKind.UnexpectedEnd)

        // A bad chunk size.
        let! server =
            serverFed "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"

        let! req = server.ReadAsync()
        // Read as a stream, the body throws the MalformedMessageException itself.
        let body = req.Content.ReadAsStream()
        let ex = malformed (fun () -> body.CopyToAsync(Stream.Null))
        Assert.That(ex.Kind, Is.EqualTo ErrorKind.InvalidChunkSize)
        Assert.That(ex.Offset, Is.EqualTo 8L)

        // Chunk data longer than its size: the smuggling shape.
        let! server =
            serverFed "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcGET /x HTTP/1.1\r\n\r\n"

        let! req = server.ReadAsync()
        let ex = bodyMalformed (fun () -> req.Content.ReadAsStringAsync() :> Task)
        Assert.That(ex.Kind, Is.EqualTo ErrorKind.InvalidChunkTerminator)

        Assert.That(
            (malformed (readReq server)).Kind,
            Is.EqualTo ErrorKind.InvalidChunkTerminator,
            "the smuggled request is never read"
        )
    }
    |> sync

[<Test>]
let ``ClientConn: bad, torn and missing responses`` () =
    task {
        let get () =
            new HttpRequestMessage(HttpMethod.Get, "http://x/")

        let! client = clientFed "HTTP/1.1 2000 OK\r\n\r\n"
        let ex = malformed (fun () -> client.DoAsync(get ()) :> Task)
        Assert.That(ex.Kind, Is.EqualTo ErrorKind.InvalidStatusLine)

        Assert.ThrowsAsync<MalformedMessageException>(fun () -> client.WriteAsync(get ()))
        |> ignore

        let! client = clientFed "HTTP/1.1 200 OK\r\nContent-Len"
        let ex = malformed (fun () -> client.DoAsync(get ()) :> Task)
        Assert.That(ex.Kind, Is.EqualTo ErrorKind.UnexpectedEnd)

        let! client = clientFed ""

        Assert.ThrowsAsync<EndOfStreamException>(fun () -> client.DoAsync(get ()) :> Task)
        |> ignore

        let! client = clientFed "SSH-2.0-OpenSSH_9.6\r\n"
        let ex = malformed (fun () -> client.DoAsync(get ()) :> Task)
        Assert.That(ex.Kind, Is.EqualTo ErrorKind.InvalidStatusLine)
    }
    |> sync

[<Test>]
let ``a peer resetting mid-body gives an IOException on the body read, and the next read fails`` () =
    task {
        let! (clientTcp: TcpClient), (serverTcp: TcpClient) = socketPair ()
        use client = new ClientConn(clientTcp.GetStream())
        let req = new HttpRequestMessage(HttpMethod.Get, "http://x/")
        do! client.WriteAsync req
        let s = serverTcp.GetStream()
        do! writeText s ("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial")
        do! s.FlushAsync()
        let! resp = client.ReadAsync req
        serverTcp.Client.LingerState <- LingerOption(true, 0)
        serverTcp.Close() // RST
        let body = resp.Content.ReadAsByteArrayAsync()
        let ex = Assert.CatchAsync(fun () -> body :> Task)

        // As a cut short (below) does: HttpRequestException around an IOException, whatever the cut.
        Assert.That(ex, Is.InstanceOf<HttpRequestException>())
        Assert.That(ex.InnerException, Is.InstanceOf<IOException>())

        Assert.CatchAsync(fun () -> client.WriteAsync(new HttpRequestMessage(HttpMethod.Get, "http://x/")))
        |> ignore
    }
    |> sync

[<Test>]
let ``every wait honours cancellation, and a cancelled read breaks the read side`` () =
    task {
        let _clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd)
        use cts = new CancellationTokenSource(200)

        Assert.CatchAsync<OperationCanceledException>(fun () -> server.ReadAsync(cts.Token) :> Task)
        |> ignore

        Assert.ThrowsAsync<IOException>(fun () -> server.ReadAsync() :> Task) |> ignore

        // A read waiting for its turn behind another read is cancelled without breaking order.
        let clientEnd, _serverEnd = duplexPair ()
        let client = new ClientConn(clientEnd)
        let r1 = new HttpRequestMessage(HttpMethod.Get, "http://x/1")
        let r2 = new HttpRequestMessage(HttpMethod.Get, "http://x/2")
        do! client.WriteAsync r1
        do! client.WriteAsync r2
        use cts2 = new CancellationTokenSource(200)
        let first = client.ReadAsync(r1, cts2.Token)
        use cts3 = new CancellationTokenSource(100)

        Assert.CatchAsync<OperationCanceledException>(fun () -> client.ReadAsync(r2, cts3.Token) :> Task)
        |> ignore

        Assert.CatchAsync<OperationCanceledException>(fun () -> first :> Task) |> ignore
        Assert.That(client.Pending, Is.EqualTo 2)
    }
    |> sync

[<Test>]
let ``an unread body beyond the drain limit closes the connection with DrainLimitException`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        let server = new ServerConn(serverEnd, MaxDrainBytes = 1024L)
        let body = String('z', 64 * 1024)

        let writer =
            task {
                try
                    do!
                        writeText
                            clientEnd
                            ((sprintf "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" body.Length body))

                    do! clientEnd.FlushAsync()
                with _ ->
                    ()
            }

        let! req = server.ReadAsync()
        do! server.WriteAsync(req, new HttpResponseMessage())

        let ex =
            Assert.ThrowsAsync<DrainLimitException>(fun () -> server.ReadAsync() :> Task)

        Assert.That(ex.Limit, Is.EqualTo 1024L)
        // The error sticks (checked before Close, as in Go), and the stream is closed.
        Assert.ThrowsAsync<DrainLimitException>(fun () -> server.ReadAsync() :> Task)
        |> ignore

        // The drain limit closed the connection; closing finishes in the background (after what was
        // written is sent), and DisposeAsync waits for it.
        do! server.DisposeAsync()
        Assert.CatchAsync(fun () -> serverEnd.WriteAsync([| 0uy |], 0, 1)) |> ignore
        do! writer |> within 10.0

        // A small unread body is drained and the next request read.
        let! server =
            serverFed
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: x\r\n\r\n"

        let! first = server.ReadAsync()
        do! server.WriteAsync(first, new HttpResponseMessage())
        let! next = server.ReadAsync()
        Assert.That(next.RequestUri.AbsolutePath, Is.EqualTo "/next")
    }
    |> sync

[<TestCase("GET /\r\n", ErrorKind.InvalidRequestLine)>]
[<TestCase("GET / HTTP/1.1\r\nHost: x\r\n\rX", ErrorKind.BareCR)>]
let ``a head proven invalid fails while the peer is still connected (no waiting for its end)``
    (raw: string, kind: ErrorKind)
    =
    task {
        // The peer stays connected and sends nothing more: only early rejection can end the read.
        let clientEnd, serverEnd = duplexPair ()
        use _client = clientEnd
        do! writeText clientEnd raw
        do! clientEnd.FlushAsync()
        use conn = new ServerConn(serverEnd)
        let read = conn.ReadAsync()
        let! outcome = Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds 10.0))
        Assert.That(outcome, Is.SameAs read, "the read waited for more input")
        let ex = Assert.ThrowsAsync<MalformedMessageException>(fun () -> read :> Task)
        Assert.That(ex.Error.Kind, Is.EqualTo kind)
    }
    |> sync

[<Test>]
let ``ServerConn: a Content-Length above MaxRequestBodyBytes is refused with the head, 413`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        use _client = clientEnd
        do! writeText clientEnd "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"
        do! clientEnd.FlushAsync()

        use conn =
            new ServerConn(
                serverEnd,
                ParserSettings = ParserSettings.Default.WithLimits(Limits.Default.WithMaxRequestBodyBytes 1000L)
            )

        let ex =
            Assert.ThrowsAsync<MalformedMessageException>(fun () -> conn.ReadAsync() :> Task)

        Assert.That(ex.Error.Kind, Is.EqualTo ErrorKind.BodyTooLarge)
        Assert.That(ex.Error.StatusHint, Is.EqualTo 413)
    }
    |> sync

[<Test>]
let ``ServerConn: a chunked body that grows past MaxRequestBodyBytes fails as it arrives, 413`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        use _client = clientEnd
        let chunk = String('c', 600)

        do!
            writeText
                clientEnd
                (sprintf
                    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n%s\r\n258\r\n%s\r\n"
                    chunk
                    chunk)

        do! clientEnd.FlushAsync()

        use conn =
            new ServerConn(
                serverEnd,
                ParserSettings = ParserSettings.Default.WithLimits(Limits.Default.WithMaxRequestBodyBytes 1000L)
            )

        let! request = conn.ReadAsync()
        let! body = request.Content.ReadAsStreamAsync()

        let ex =
            Assert.ThrowsAsync<MalformedMessageException>(fun () -> countToEnd 4096 body :> Task)

        Assert.That(ex.Error.Kind, Is.EqualTo ErrorKind.BodyTooLarge)
        Assert.That(ex.Error.StatusHint, Is.EqualTo 413)
    }
    |> sync

[<TestCase("GET / HTTP/1.1\r\nHo")>]
[<TestCase("")>]
let ``ServerConn: a head not complete within HeadTimeout (slowloris, or an idle keep-alive) fails with a 408 hint``
    (partial: string)
    =
    task {
        let clientEnd, serverEnd = duplexPair ()
        use _client = clientEnd
        do! writeText clientEnd partial
        do! clientEnd.FlushAsync()

        use conn =
            new ServerConn(serverEnd, HeadTimeout = Nullable(TimeSpan.FromMilliseconds 300.0))

        let ex =
            Assert.ThrowsAsync<RequestTimeoutException>(fun () -> conn.ReadAsync() :> Task)

        Assert.That(ex.Error.Kind, Is.EqualTo ErrorKind.HeadTimeout)
        Assert.That(ex.Error.StatusHint, Is.EqualTo 408)
        Assert.That(ex.Message, Does.Contain "HeadTimeout")
    }
    |> sync

[<TestCase("Content-Length: 10\r\n\r\nabc")>]
[<TestCase("Transfer-Encoding: chunked\r\n\r\n5\r\nab")>]
let ``ServerConn: a request body that stops arriving fails the read after BodyIdleTimeout with a 408 hint``
    (rest: string)
    =
    task {
        let! client, server = socketPair ()
        use _client = client
        use _server = server
        do! writeText (client.GetStream()) ("POST /upload HTTP/1.1\r\nHost: x\r\n" + rest)

        use conn =
            new ServerConn(server.GetStream(), BodyIdleTimeout = Nullable(TimeSpan.FromMilliseconds 300.0))

        let! request = conn.ReadAsync()
        use! body = request.Content.ReadAsStreamAsync()
        let buffer = Array.zeroCreate<byte> 64
        let! first = body.ReadAsync(buffer, 0, buffer.Length)
        Assert.That(first, Is.GreaterThan 0, "what arrived is read")

        let ex =
            Assert.ThrowsAsync<RequestTimeoutException>(fun () -> countToEnd buffer.Length body :> Task)

        Assert.That(ex.Error.Kind, Is.EqualTo ErrorKind.BodyTimeout)
        Assert.That(ex.Error.StatusHint, Is.EqualTo 408)
        Assert.That(ex.Message, Does.Contain "BodyIdleTimeout")
        // The read side is broken: the next read fails at once instead of waiting.
        Assert.ThrowsAsync<IOException>(fun () -> conn.ReadAsync() :> Task) |> ignore
    }
    |> sync

[<Test>]
let ``ServerConn: a request body trickled a byte at a time, each well inside the idle timeout, fails MinRequestBodyDataRate with a 408 hint``
    ()
    =
    task {
        let! client, server = socketPair ()
        use _client = client
        use _server = server
        let stream = client.GetStream()
        do! writeText stream "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        use stop = new CancellationTokenSource()
        // The trickler: one byte, then a pause far shorter than the idle timeout, until the server gives up.
        let trickle =
            task {
                try
                    while not stop.IsCancellationRequested do
                        do! stream.WriteAsync(ReadOnlyMemory [| byte 'x' |], stop.Token)
                        do! Task.Delay(20, stop.Token)
                with _ ->
                    ()
            }

        use conn =
            new ServerConn(
                server.GetStream(),
                BodyIdleTimeout = Nullable(TimeSpan.FromSeconds 20.0),
                MinRequestBodyDataRate = MinDataRate(2000.0, TimeSpan.FromMilliseconds 300.0)
            )

        let! request = conn.ReadAsync()
        use! body = request.Content.ReadAsStreamAsync()

        let ex =
            Assert.ThrowsAsync<RequestTimeoutException>(fun () -> countToEnd 64 body :> Task)

        stop.Cancel()
        do! trickle
        Assert.That(ex.Error.Kind, Is.EqualTo ErrorKind.BodyTooSlow)
        Assert.That(ex.Error.StatusHint, Is.EqualTo 408)
        Assert.That(ex.Message, Does.Contain "MinRequestBodyDataRate")
        Assert.ThrowsAsync<IOException>(fun () -> conn.ReadAsync() :> Task) |> ignore
    }
    |> sync

[<Test>]
let ``ServerConn: time the application spends between body reads does not count against MinRequestBodyDataRate`` () =
    task {
        let! client, server = socketPair ()
        use _client = client
        use _server = server
        let body = String('b', 20000)

        do!
            writeText
                (client.GetStream())
                (sprintf "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" body.Length body)

        // A rate no client could keep up if the handler's own pause were counted as waiting for the client.
        use conn =
            new ServerConn(
                server.GetStream(),
                MinRequestBodyDataRate = MinDataRate(1e9, TimeSpan.FromMilliseconds 500.0)
            )

        let! request = conn.ReadAsync()
        use! stream = request.Content.ReadAsStreamAsync()
        let buffer = Array.zeroCreate<byte> 1000
        let! first = stream.ReadAsync(buffer, 0, buffer.Length)
        do! Task.Delay 1000 // the handler is busy: this is what is under test, not a synchronisation
        use rest = new MemoryStream()
        do! stream.CopyToAsync rest
        Assert.That(int64 first + rest.Length, Is.EqualTo(int64 body.Length))
    }
    |> sync

[<Test>]
let ``ClientConn: a response body that stops arriving fails the read after BodyIdleTimeout, with a TimeoutException inside``
    ()
    =
    task {
        let release = Signal()

        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"
                    do! release.Wait() // the rest never comes while the client waits
                })

        use tcp = new TcpClient()
        do! tcp.ConnectAsync(Net.IPAddress.Loopback, server.Port)

        use conn =
            new ClientConn(tcp.GetStream(), BodyIdleTimeout = Nullable(TimeSpan.FromMilliseconds 300.0))

        use! response =
            conn.DoAsync(new HttpRequestMessage(HttpMethod.Get, server.Uri "/stall"))

        use! body = response.Content.ReadAsStreamAsync()
        let ex = Assert.CatchAsync<IOException>(fun () -> countToEnd 64 body :> Task)
        release.Set()
        Assert.That(ex.InnerException, Is.InstanceOf<TimeoutException>())
        Assert.That(ex.Message, Does.Contain "BodyIdleTimeout")
        // The connection is closed: the next exchange fails at once instead of waiting.
        Assert.CatchAsync<Exception>(fun () ->
            conn.DoAsync(new HttpRequestMessage(HttpMethod.Get, server.Uri "/next")) :> Task)
        |> ignore
    }
    |> sync

[<Test>]
let ``a time limit of zero or less is refused on every setting that takes one; null means none`` () =
    for bad in [ TimeSpan.Zero; TimeSpan.FromSeconds -1.0 ] do
        let limit = Nullable bad
        let stream () = new MemoryStream() :> Stream

        for make in
            [
                fun () -> new ServerConn(stream (), SendTimeout = limit) :> IDisposable
                fun () -> new ServerConn(stream (), BodyIdleTimeout = limit) :> IDisposable
                fun () -> new ClientConn(stream (), SendTimeout = limit) :> IDisposable
                fun () -> new ClientConn(stream (), BodyIdleTimeout = limit) :> IDisposable
                fun () -> new Transport(ResponseBodyIdleTimeout = limit) :> IDisposable
            ] do
            Assert.Throws<ArgumentOutOfRangeException>(fun () -> make().Dispose()) |> ignore

    use none =
        new ServerConn(new MemoryStream(), SendTimeout = Nullable(), BodyIdleTimeout = Nullable())

    Assert.That(none.SendTimeout, Is.Null)
    Assert.That(none.BodyIdleTimeout, Is.Null)

[<Test>]
let ``MinDataRate refuses a rate that is not positive and finite, and a negative grace period`` () =
    for rate in [ 0.0; -1.0; nan; infinity ] do
        Assert.Throws<ArgumentOutOfRangeException>(fun () -> MinDataRate(rate, TimeSpan.Zero) |> ignore)
        |> ignore

    Assert.Throws<ArgumentOutOfRangeException>(fun () -> MinDataRate(1.0, TimeSpan.FromSeconds -1.0) |> ignore)
    |> ignore

[<Test>]
let ``ServerConn: heads that arrive in time are read, one after another, under a HeadTimeout`` () =
    task {
        let clientEnd, serverEnd = duplexPair ()
        use _client = clientEnd

        use conn =
            new ServerConn(serverEnd, HeadTimeout = Nullable(TimeSpan.FromSeconds 10.0))

        for path in [ "/a"; "/b"; "/c" ] do
            do! writeText clientEnd (sprintf "GET %s HTTP/1.1\r\nHost: x\r\n\r\n" path)
            do! clientEnd.FlushAsync()
            let! request = conn.ReadAsync()
            Assert.That(request.RequestUri.AbsolutePath, Is.EqualTo path)
            use response = new HttpResponseMessage(Net.HttpStatusCode.NoContent)
            do! conn.WriteAsync(request, response)
    }
    |> sync

/// Writes a response of `size` bytes to a client that reads `step` bytes, then waits `pauseMs`, over and over; the
/// write's outcome (None when it and the close succeeded) and how many bytes the client read.
let private sendToSlowReader (make: Stream -> ServerConn) (size: int) (step: int) (pauseMs: int) =
    task {
        let! client, server = socketPair ()
        use _client = client
        use _server = server
        let stream = client.GetStream()
        do! writeText stream "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
        use stop = new CancellationTokenSource()

        let reading =
            task {
                let buffer = Array.zeroCreate<byte> step
                let mutable total = 0L

                try
                    let mutable go = true

                    while go && not stop.IsCancellationRequested do
                        let! n = stream.ReadAsync(buffer, 0, step, stop.Token)
                        total <- total + int64 n
                        go <- n > 0
                        do! Task.Delay(pauseMs, stop.Token)
                with _ ->
                    ()

                return total
            }

        use conn = make (server.GetStream())
        let! request = conn.ReadAsync()

        use response =
            new HttpResponseMessage(Net.HttpStatusCode.OK, Content = new ByteArrayContent(Array.zeroCreate size))

        let! outcome =
            task {
                try
                    do! conn.WriteAsync(request, response)
                    do! conn.CloseAsync()
                    return None
                with e ->
                    return Some e
            }

        // On success the reader goes on to the end of the stream (the kernel may still hold megabytes); else it stops.
        if outcome.IsSome then
            stop.Cancel()

        let! total = reading
        return outcome, total
    }

/// The messages of `e` and its inner exceptions, outermost first.
let private messagesOf (e: exn) =
    Seq.unfold (fun (e: exn) -> if isNull e then None else Some(e.Message, e.InnerException)) e
    |> String.concat " | "

[<Test>]
let ``ServerConn: a client that takes a response slower than MinResponseDataRate loses the connection`` () =
    task {
        // 100 bytes every 20 ms is at most 5 KB/s, against a minimum of 100 KB/s.
        let! outcome, _ =
            sendToSlowReader
                (fun stream ->
                    new ServerConn(
                        stream,
                        SendTimeout = Nullable(),
                        MinResponseDataRate = MinDataRate(100_000.0, TimeSpan.FromMilliseconds 200.0)
                    ))
                (32 * 1024 * 1024)
                100
                20

        Assert.That(outcome.IsSome, Is.True, "the slow reader kept its connection")
        Assert.That(messagesOf outcome.Value, Does.Contain "minimum response data rate")
    }
    |> sync

[<Test>]
let ``ServerConn: a client that reads slowly but above MinResponseDataRate gets a large response whole, though each send outlasts SendTimeout``
    ()
    =
    task {
        // 64 KiB every 10 ms, against a minimum of 200 KB/s; a send of 64 KiB may take 0.2 s + 0.33 s, far past 1 ms.
        let size = 8 * 1024 * 1024

        let! outcome, total =
            sendToSlowReader
                (fun stream ->
                    new ServerConn(
                        stream,
                        SendTimeout = Nullable(TimeSpan.FromMilliseconds 1.0),
                        MinResponseDataRate = MinDataRate(200_000.0, TimeSpan.FromMilliseconds 200.0)
                    ))
                size
                (64 * 1024)
                10

        Assert.That(outcome, Is.Null, string outcome)
        Assert.That(total, Is.GreaterThan(int64 size), "the whole response, head and body, was read")
    }
    |> sync

[<Test>]
let ``ServerConn: a client that never reads fails the write after SendTimeout instead of holding it forever`` () =
    task {
        let! client, server = socketPair ()
        use _client = client
        use _server = server
        do! writeText (client.GetStream()) "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"

        use conn =
            new ServerConn(
                server.GetStream(),
                SendTimeout = Nullable(TimeSpan.FromMilliseconds 500.0),
                MinResponseDataRate = null
            )

        let! request = conn.ReadAsync()
        // Far more than the socket buffers hold: the client reads none of it.
        use response =
            new HttpResponseMessage(
                Net.HttpStatusCode.OK,
                Content = new ByteArrayContent(Array.zeroCreate (64 * 1024 * 1024))
            )

        let write = conn.WriteAsync(request, response)
        let! first = Task.WhenAny(write, Task.Delay(TimeSpan.FromSeconds 30.0))
        Assert.That(first, Is.SameAs write, "the write was still blocked")
        let ex = Assert.CatchAsync<Exception>(fun () -> write)
        Assert.That(messagesOf ex, Does.Contain "SendTimeout")
    }
    |> sync
