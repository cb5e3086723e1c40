/// Fault injection: a TCP relay between real peers on 127.0.0.1 that splits every byte, cuts, resets, stalls, pauses
/// or half-closes a connection at a chosen point. Each fault gives the documented error, pooled connections are released, and nothing
/// waits past its deadline.
module HttpUtil.Tests.RelayTests

open System
open System.Collections.Concurrent
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Threading
open System.Threading.Tasks
open NUnit.Framework
open Microsoft.AspNetCore.Http
open HttpUtil
open HttpUtil.Core
open HttpUtil.Tests.Support
open HttpUtil.Tests.ProxyTests

/// What the relay does to one connection.
type Fault =
    /// Passes bytes through as they come.
    | Clean
    /// Passes every byte, both ways, in a write of its own.
    | Fragment
    /// Passes this many bytes of the server's answer, then closes both sides (FIN).
    | CutResponseAfter of int
    /// Passes this many bytes of the server's answer, then resets the client's connection (RST).
    | ResetResponseAfter of int
    /// Passes the request but never a byte of the answer.
    | StallResponse
    /// Passes this many bytes of the server's answer, pauses this long, then passes the rest.
    | PauseResponseAfter of int * TimeSpan
    /// Passes this many bytes of the client's request, pauses this long, then passes the rest.
    | PauseRequestAfter of int * TimeSpan
    /// Passes this many bytes of the client's request, then half-closes the server's side (FIN on the way in only):
    /// the answer still flows back.
    | HalfCloseRequestAfter of int

/// A relay on a loopback port to `target`; connection i (from 0) gets `faultOf i`.
type FaultRelay(target: int, faultOf: int -> Fault) =
    let listener = new TcpListener(IPAddress.Loopback, 0)
    do listener.Start()
    let sockets = ConcurrentBag<Socket>()
    let mutable count = 0
    let stop = new CancellationTokenSource()

    let pump (from: Socket) (into: Socket) (fault: Fault) (isAnswer: bool) =
        task {
            let buffer = Array.zeroCreate<byte> 16384
            let mutable passed = 0
            let mutable go = true

            while go do
                let! n = from.ReceiveAsync(Memory buffer, SocketFlags.None)

                if n = 0 then
                    into.Shutdown SocketShutdown.Send
                    go <- false
                else
                    match fault with
                    | Fragment ->
                        for i in 0 .. n - 1 do
                            let! _ = into.SendAsync(ReadOnlyMemory(buffer, i, 1), SocketFlags.None)
                            ()
                    | CutResponseAfter limit
                    | ResetResponseAfter limit when isAnswer ->
                        let take = min n (limit - passed)
                        let! _ = into.SendAsync(ReadOnlyMemory(buffer, 0, take), SocketFlags.None)
                        passed <- passed + take

                        if passed >= limit then
                            match fault with
                            | ResetResponseAfter _ -> into.LingerState <- LingerOption(true, 0)
                            | _ -> into.Shutdown SocketShutdown.Both

                            into.Close()
                            from.Close()
                            go <- false
                    | StallResponse when isAnswer -> () // swallowed: the client never sees the answer
                    | PauseResponseAfter(limit, pause) when isAnswer && passed + n > limit && passed <= limit ->
                        let before = limit - passed
                        let! _ = into.SendAsync(ReadOnlyMemory(buffer, 0, before), SocketFlags.None)
                        do! Task.Delay(pause, stop.Token)
                        let! _ = into.SendAsync(ReadOnlyMemory(buffer, before, n - before), SocketFlags.None)
                        passed <- passed + n
                    | PauseRequestAfter(limit, pause) when not isAnswer && passed + n > limit && passed <= limit ->
                        let before = limit - passed
                        let! _ = into.SendAsync(ReadOnlyMemory(buffer, 0, before), SocketFlags.None)
                        do! Task.Delay(pause, stop.Token)
                        let! _ = into.SendAsync(ReadOnlyMemory(buffer, before, n - before), SocketFlags.None)
                        passed <- passed + n
                    | HalfCloseRequestAfter limit when not isAnswer ->
                        let take = min n (limit - passed)
                        let! _ = into.SendAsync(ReadOnlyMemory(buffer, 0, take), SocketFlags.None)
                        passed <- passed + take

                        if passed >= limit then
                            into.Shutdown SocketShutdown.Send // the rest of the request is dropped
                            go <- false
                    | _ ->
                        let! _ = into.SendAsync(ReadOnlyMemory(buffer, 0, n), SocketFlags.None)
                        passed <- passed + n
        }

    do
        task {
            try
                while true do
                    let! client = listener.AcceptSocketAsync()
                    let fault = faultOf (Interlocked.Increment(&count) - 1)

                    let server =
                        new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)

                    do! server.ConnectAsync(IPEndPoint(IPAddress.Loopback, target))
                    client.NoDelay <- true
                    server.NoDelay <- true
                    sockets.Add client
                    sockets.Add server

                    let run (t: Task) =
                        task {
                            try
                                do! t
                            with _ ->
                                () // the relay's own sockets fail as part of the faults
                        }
                        |> ignore

                    run (pump client server fault false)
                    run (pump server client fault true)
            with _ ->
                ()
        }
        |> ignore

    member _.Port = (listener.LocalEndpoint :?> IPEndPoint).Port

    member this.Uri(path: string) =
        Uri(sprintf "http://127.0.0.1:%d%s" this.Port path)

    /// Connections accepted so far.
    member _.Connections = Volatile.Read(&count)

    interface IDisposable with
        member _.Dispose() =
            stop.Cancel()
            listener.Stop()

            for s in sockets do
                try
                    s.Dispose()
                with _ ->
                    ()

let private page = String('p', 64 * 1024)

/// A Kestrel upstream: GET answers 64 KiB, POST echoes the body.
let private upstream () =
    Kestrel.Plain(fun ctx ->
        task {
            if ctx.Request.Method = "POST" then
                use reader = new StreamReader(ctx.Request.Body)
                let! body = reader.ReadToEndAsync()
                do! ctx.Response.WriteAsync body
            else
                do! ctx.Response.WriteAsync page
        })

let private fails (t: unit -> Task<'T>) =
    task {
        try
            let! _ = t ()
            return None
        with e ->
            return Some e
    }

[<Test>]
let ``through a relay that splits every byte, Transport and Kestrel exchange whole messages and reuse the connection``
    ()
    =
    task {
        use k = upstream ()
        use relay = new FaultRelay(k.Port, (fun _ -> Fragment))
        use transport = new Transport()
        use client = new HttpClient(transport)
        let! got = client.GetStringAsync(relay.Uri "/")
        use! posted = client.PostAsync(relay.Uri "/", new StringContent(String('q', 3000)))
        let! echoed = posted.Content.ReadAsStringAsync()
        Assert.That(got, Is.EqualTo page)
        Assert.That(echoed, Is.EqualTo(String('q', 3000)))
        Assert.That(relay.Connections, Is.EqualTo 1, "the connection was reused")
    }
    |> sync

[<Test>]
let ``ClientConn and ServerConn pipeline through a relay that splits every byte`` () =
    task {
        use server =
            new ScriptedServer(fun _ s ->
                task {
                    use conn = new ServerConn(s)

                    for _ in 1..3 do
                        let! request = conn.ReadAsync()

                        let! body =
                            if isNull request.Content then
                                Task.FromResult ""
                            else
                                request.Content.ReadAsStringAsync()

                        use response =
                            new HttpResponseMessage(HttpStatusCode.OK, Content = new StringContent("got " + body))

                        do! conn.WriteAsync(request, response)
                })

        use relay = new FaultRelay(server.Port, (fun _ -> Fragment))
        use tcp = new TcpClient()
        do! tcp.ConnectAsync(IPAddress.Loopback, relay.Port)
        use conn = new ClientConn(tcp.GetStream())

        let requests =
            [
                for body in [ "a"; "bb"; "ccc" ] ->
                    let r =
                        new HttpRequestMessage(HttpMethod.Post, relay.Uri "/", Content = new StringContent(body))

                    r.Headers.TransferEncodingChunked <- (body = "bb")
                    r
            ]

        for r in requests do
            do! conn.WriteAsync r

        let! answers =
            task {
                let out = ResizeArray()

                for r in requests do
                    use! response = conn.ReadAsync r
                    let! text = response.Content.ReadAsStringAsync()
                    out.Add text

                return List.ofSeq out
            }

        Assert.That(answers, Is.EqualTo(box [ "got a"; "got bb"; "got ccc" ]))
    }
    |> sync

[<Test>]
let ``a response cut mid-body fails the read, the connection is not pooled, and the next request gets a new one`` () =
    task {
        use k = upstream ()

        use relay =
            new FaultRelay(k.Port, (fun i -> if i = 0 then CutResponseAfter 5000 else Clean))

        use transport = new Transport()
        use client = new HttpClient(transport)
        let! error = fails (fun () -> client.GetStringAsync(relay.Uri "/"))
        Assert.That(error, Is.Not.Null)
        Assert.That(error.Value, Is.InstanceOf<HttpRequestException>().Or.InstanceOf<IOException>(), string error.Value)
        Assert.That(transport.IdleConnectionCount, Is.EqualTo 0, "a broken connection is never pooled")
        let! again = client.GetStringAsync(relay.Uri "/")
        Assert.That(again, Is.EqualTo page)
        Assert.That(relay.Connections, Is.EqualTo 2)
    }
    |> sync

[<Test>]
let ``a reset part way through the answer fails the exchange with an IOException, and nothing is pooled`` () =
    task {
        use k = upstream ()

        use relay =
            new FaultRelay(k.Port, (fun i -> if i = 0 then ResetResponseAfter 300 else Clean))

        use transport = new Transport()
        use invoker = new HttpMessageInvoker(transport)
        // The reset may overtake the head (a reset discards what the receiver had not read yet): then SendAsync fails;
        // otherwise the body read does. Either way it is an error, never a short body.
        let! error =
            fails (fun () ->
                task {
                    use! response =
                        invoker.SendAsync(
                            new HttpRequestMessage(HttpMethod.Get, relay.Uri "/"),
                            CancellationToken.None
                        )

                    return! response.Content.ReadAsStringAsync()
                })

        Assert.That(error.Value, Is.InstanceOf<IOException>().Or.InstanceOf<HttpRequestException>(), string error)
        Assert.That(transport.IdleConnectionCount, Is.EqualTo 0)
    }
    |> sync

[<Test>]
let ``an upstream that never answers gives ResponseHeaderTimeout's TimeoutException, and nothing is pooled`` () =
    task {
        use k = upstream ()
        use relay = new FaultRelay(k.Port, (fun _ -> StallResponse))

        use transport =
            new Transport(ResponseHeaderTimeout = Nullable(TimeSpan.FromMilliseconds 300.0))

        use client = new HttpClient(transport)
        let! error = fails (fun () -> client.GetStringAsync(relay.Uri "/")) |> within 30.0
        Assert.That(error.Value, Is.InstanceOf<HttpRequestException>())
        Assert.That(error.Value.InnerException, Is.InstanceOf<TimeoutException>())
        Assert.That(error.Value.InnerException.Message, Does.Contain "ResponseHeaderTimeout")
        Assert.That(transport.IdleConnectionCount, Is.EqualTo 0)
    }
    |> sync

[<Test>]
let ``ReverseProxy: an upstream answer cut mid-body aborts the client's connection, and the proxy serves the next request``
    ()
    =
    task {
        use k = upstream ()

        use relay =
            new FaultRelay(k.Port, (fun i -> if i = 0 then CutResponseAfter 5000 else Clean))

        let proxy = ReverseProxy.NewSingleHost(relay.Uri "/")
        proxy.ErrorLog <- ListLogger()
        use frontend = front proxy
        use client = new HttpClient()
        let! error = fails (fun () -> client.GetStringAsync(frontend.Uri "/"))
        Assert.That(error.IsSome, Is.True, "a cut-short body is never passed off as a whole one")
        let! again = client.GetStringAsync(frontend.Uri "/")
        Assert.That(again, Is.EqualTo page)
    }
    |> sync

/// A relay whose first connection pauses `pause` after 5,000 bytes of the answer; later ones are clean.
let private pausedOnce (port: int) (pause: TimeSpan) =
    new FaultRelay(port, (fun i -> if i = 0 then PauseResponseAfter(5000, pause) else Clean))

[<Test>]
let ``a pause in the upstream's body shorter than ResponseBodyIdleTimeout is waited out, and the connection is reused``
    ()
    =
    task {
        use k = upstream ()

        use relay = pausedOnce k.Port (TimeSpan.FromMilliseconds 200.0)

        use transport =
            new Transport(ResponseBodyIdleTimeout = Nullable(TimeSpan.FromSeconds 20.0))

        use client = new HttpClient(transport)
        let! first = client.GetStringAsync(relay.Uri "/")
        let! second = client.GetStringAsync(relay.Uri "/")
        Assert.That(first, Is.EqualTo page)
        Assert.That(second, Is.EqualTo page)
        Assert.That(relay.Connections, Is.EqualTo 1)
    }
    |> sync

[<Test>]
let ``a pause in the upstream's body longer than ResponseBodyIdleTimeout fails the read with a TimeoutException inside, and nothing is pooled``
    ()
    =
    task {
        use k = upstream ()

        use relay = pausedOnce k.Port (TimeSpan.FromMinutes 5.0)

        use transport =
            new Transport(ResponseBodyIdleTimeout = Nullable(TimeSpan.FromMilliseconds 300.0))

        use invoker = new HttpMessageInvoker(transport)

        let! error =
            fails (fun () ->
                task {
                    use! response =
                        invoker.SendAsync(
                            new HttpRequestMessage(HttpMethod.Get, relay.Uri "/"),
                            CancellationToken.None
                        )

                    use! body = response.Content.ReadAsStreamAsync()
                    use sink = new MemoryStream()
                    do! body.CopyToAsync sink
                    return sink.Length
                })

        Assert.That(error.Value, Is.InstanceOf<IOException>(), string error)
        Assert.That(error.Value.InnerException, Is.InstanceOf<TimeoutException>())
        Assert.That(error.Value.Message, Does.Contain "BodyIdleTimeout")
        Assert.That(transport.IdleConnectionCount, Is.EqualTo 0)
        use client = new HttpClient(transport)
        let! again = client.GetStringAsync(relay.Uri "/")
        Assert.That(again, Is.EqualTo page)
        Assert.That(relay.Connections, Is.EqualTo 2)
    }
    |> sync

[<Test>]
let ``ReverseProxy: an upstream body that stops part way is given up after the transport's ResponseBodyIdleTimeout, and the proxy serves the next request``
    ()
    =
    task {
        use k = upstream ()

        use relay = pausedOnce k.Port (TimeSpan.FromMinutes 5.0)

        use transport =
            new Transport(ResponseBodyIdleTimeout = Nullable(TimeSpan.FromMilliseconds 300.0))

        let proxy = ReverseProxy.NewSingleHost(relay.Uri "/")
        proxy.Transport <- transport
        let log = ListLogger()
        proxy.ErrorLog <- log
        use frontend = front proxy
        use client = new HttpClient()
        let! error = fails (fun () -> client.GetStringAsync(frontend.Uri "/")) |> within 60.0
        Assert.That(error.IsSome, Is.True, "a body the upstream stopped sending is never passed off as whole")
        let! again = client.GetStringAsync(frontend.Uri "/")
        Assert.That(again, Is.EqualTo page)
    }
    |> sync

/// A ServerConn (with BodyIdleTimeout `idle`) behind a relay with `fault` that runs `handle` on the one connection; the
/// raw answer a client that sent `request` through the relay read until the server closed.
let private throughRelayToServerConn
    (idle: TimeSpan)
    (fault: Fault)
    (request: string)
    (handle: ServerConn -> Task<unit>)
    =
    task {
        use server =
            new ScriptedServer(fun _ s ->
                task {
                    use conn = new ServerConn(s, BodyIdleTimeout = Nullable idle)

                    do! handle conn
                    do! conn.CloseAsync()
                })

        use relay = new FaultRelay(server.Port, (fun _ -> fault))
        use tcp = new TcpClient()
        do! tcp.ConnectAsync(IPAddress.Loopback, relay.Port)
        let stream = tcp.GetStream()
        do! writeText stream request
        let! answer = readToEnd stream
        Assert.That(server.Errors, Is.Empty)
        return Text.Encoding.Latin1.GetString(answer: byte[])
    }

let private post =
    "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + String('u', 100)

let private headLength = post.Length - 100

/// Reads a request and its body; answers 200 with the body's length, or the error's status hint; records what happened.
let private answerBody (seen: TaskCompletionSource<Result<int, exn>>) (conn: ServerConn) =
    task {
        let! request = conn.ReadAsync()

        try
            let! body = request.Content.ReadAsByteArrayAsync()
            seen.SetResult(Ok body.Length)

            use response =
                new HttpResponseMessage(HttpStatusCode.OK, Content = new StringContent(string body.Length))

            do! conn.WriteAsync(request, response)
        with e ->
            let inner = if isNull e.InnerException then e else e.InnerException
            seen.SetResult(Error inner)

            let status =
                match inner with
                | :? RequestTimeoutException as t -> t.Error.StatusHint
                | :? MalformedMessageException as m -> m.Error.StatusHint
                | _ -> 500

            use response = new HttpResponseMessage(enum<HttpStatusCode> status)
            response.Headers.ConnectionClose <- true
            do! conn.WriteAsync(request, response)
    }

/// `post` through a relay with `fault` to a ServerConn (BodyIdleTimeout `idle`) that answers it with `answerBody`: what
/// the server made of the body, and the raw answer the client read.
let private postThroughRelay (idle: TimeSpan) (fault: Fault) =
    task {
        let seen = TaskCompletionSource<Result<int, exn>>()
        let! answer = throughRelayToServerConn idle fault post (answerBody seen)
        let! outcome = seen.Task
        return outcome, answer
    }

[<Test>]
let ``ServerConn: a request body paused past BodyIdleTimeout fails with BodyTimeout, and the client still gets the 408``
    ()
    =
    task {
        let! outcome, answer =
            postThroughRelay
                (TimeSpan.FromMilliseconds 300.0)
                (PauseRequestAfter(headLength + 10, TimeSpan.FromMinutes 5.0))

        match outcome with
        | Error(:? RequestTimeoutException as t) -> Assert.That(t.Error.Kind, Is.EqualTo ErrorKind.BodyTimeout)
        | other -> Assert.Fail(sprintf "expected a body timeout, got %A" other)

        Assert.That(answer, Does.StartWith "HTTP/1.1 408 ")
    }
    |> sync

[<Test>]
let ``ServerConn: a request body paused for less than BodyIdleTimeout is read whole`` () =
    task {
        let! outcome, answer =
            postThroughRelay
                (TimeSpan.FromSeconds 20.0)
                (PauseRequestAfter(headLength + 10, TimeSpan.FromMilliseconds 200.0))

        match outcome with
        | Ok length -> Assert.That(length, Is.EqualTo 100)
        | Error e -> Assert.Fail(sprintf "the body failed: %O" e)

        Assert.That(answer, Does.StartWith "HTTP/1.1 200 ")
        Assert.That(answer, Does.EndWith "100")
    }
    |> sync

[<Test>]
let ``ServerConn: a client that half-closes after its request still gets the answer, and the next read is a clean end``
    ()
    =
    task {
        let next = TaskCompletionSource<exn>()
        let get = "GET /half HTTP/1.1\r\nHost: x\r\n\r\n"

        let! answer =
            throughRelayToServerConn (TimeSpan.FromSeconds 20.0) (HalfCloseRequestAfter get.Length) get (fun conn ->
                task {
                    let! request = conn.ReadAsync()

                    use response =
                        new HttpResponseMessage(HttpStatusCode.OK, Content = new StringContent("still here"))

                    do! conn.WriteAsync(request, response)

                    try
                        let! _ = conn.ReadAsync()
                        next.SetResult null
                    with e ->
                        next.SetResult e
                })

        let! after = next.Task
        Assert.That(after, Is.InstanceOf<EndOfStreamException>())
        Assert.That(answer, Does.StartWith "HTTP/1.1 200 ")
        Assert.That(answer, Does.EndWith "still here")
    }
    |> sync

[<Test>]
let ``ServerConn: a client that half-closes part way through its body gets a 400 for the cut body`` () =
    task {
        let! outcome, answer =
            postThroughRelay (TimeSpan.FromSeconds 20.0) (HalfCloseRequestAfter(headLength + 10))

        match outcome with
        | Error(:? MalformedMessageException as m) -> Assert.That(m.Kind, Is.EqualTo ErrorKind.UnexpectedEnd)
        | other -> Assert.Fail(sprintf "expected a cut body, got %A" other)

        Assert.That(answer, Does.StartWith "HTTP/1.1 400 ")
    }
    |> sync
