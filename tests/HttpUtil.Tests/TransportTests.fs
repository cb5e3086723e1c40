/// Transport and ClientTrace against real servers on 127.0.0.1: Kestrel over http and https, and
/// scripted raw sockets for 1xx, 100-continue and dead connections. Hook sequences are exact.
module HttpUtil.Tests.TransportTests

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open NUnit.Framework
open HttpUtil
open HttpUtil.Core
open HttpUtil.Tests.Support

/// A trace that records every hook as a line; `tag` prefixes each line.
let recorder (tag: string) =
    let events = ConcurrentQueue<string>()
    let add (s: string) = events.Enqueue(tag + s)

    let trace =
        ClientTrace(
            GetConn = (fun i -> add ("GetConn " + i.HostPort)),
            GotConn = (fun i -> add (sprintf "GotConn reused=%b idle=%b" i.Reused i.WasIdle)),
            PutIdleConn =
                (fun i ->
                    add (
                        if isNull i.Error then
                            "PutIdleConn ok"
                        else
                            "PutIdleConn error"
                    )),
            GotFirstResponseByte = (fun () -> add "GotFirstResponseByte"),
            Got100Continue = (fun () -> add "Got100Continue"),
            Got1xxResponse = (fun i -> add (sprintf "Got1xxResponse %d" i.Status)),
            DnsStart = (fun i -> add ("DnsStart " + i.Host)),
            DnsDone = (fun i -> add (sprintf "DnsDone coalesced=%b error=%b" i.Coalesced (not (isNull i.Error)))),
            ConnectStart = (fun i -> add ("ConnectStart " + i.Network)),
            ConnectDone = (fun i -> add (sprintf "ConnectDone %s error=%b" i.Network (not (isNull i.Error)))),
            TlsHandshakeStart = (fun () -> add "TlsHandshakeStart"),
            TlsHandshakeDone =
                (fun i ->
                    add (
                        sprintf
                            "TlsHandshakeDone alpn=%s error=%b"
                            (if isNull i.State then "" else i.State.ApplicationProtocol)
                            (not (isNull i.Error))
                    )),
            WroteHeaderField = (fun i -> add ("WroteHeaderField " + i.Name)),
            WroteHeaders = (fun () -> add "WroteHeaders"),
            Wait100Continue = (fun () -> add "Wait100Continue"),
            WroteRequest =
                (fun i ->
                    add (
                        if isNull i.Error then
                            "WroteRequest ok"
                        else
                            "WroteRequest error"
                    ))
        )

    events, trace

let private take (events: ConcurrentQueue<string>) =
    let out = ResizeArray()
    let mutable e = null

    while events.TryDequeue(&e) do
        out.Add e

    List.ofSeq out

let private hello (ctx: HttpContext) : Task =
    task { do! ctx.Response.WriteAsync("hello " + ctx.Request.Path.Value) }

/// A handler that answers like `hello` but holds "/slow" requests until `release` is set;
/// `arrived` is hit as each one comes in.
let private held (arrived: Countdown) (release: Signal) (ctx: HttpContext) : Task =
    task {
        if ctx.Request.Path.Value = "/slow" then
            arrived.Hit()
            do! release.Wait()

        do! ctx.Response.WriteAsync("hello " + ctx.Request.Path.Value)
    }

let private getWith (uri: Uri) (trace: ClientTrace) =
    (new HttpRequestMessage(HttpMethod.Get, uri)).WithClientTrace trace

let private bodyOf (resp: HttpResponseMessage) = resp.Content.ReadAsStringAsync()

let private newConnection port =
    [
        sprintf "GetConn 127.0.0.1:%d" port
        "ConnectStart tcp"
        "ConnectDone tcp error=false"
        "GotConn reused=false idle=false"
        "WroteHeaderField Host"
        "WroteHeaders"
        "WroteRequest ok"
        "GotFirstResponseByte"
        "PutIdleConn ok"
    ]

[<Test>]
let ``a new connection, then a reused idle one: exact hook sequences`` () =
    task {
        use k = Kestrel.Plain hello
        let time = ManualTime()
        use client = new HttpClient(new Transport(TimeProvider = time))
        let events, trace = recorder ""
        use! r1 = client.SendAsync(getWith (k.Uri "/a") trace)
        let! b1 = bodyOf r1
        Assert.That(b1, Is.EqualTo "hello /a")
        Assert.That(take events, Is.EqualTo(box (newConnection k.Port)))

        let mutable idle = TimeSpan.Zero

        let idleTrace = ClientTrace(GotConn = (fun i -> idle <- i.IdleTime))

        time.Advance(TimeSpan.FromMilliseconds 20.0)
        use! r2 = client.SendAsync((getWith (k.Uri "/b") trace).WithClientTrace idleTrace)
        let! b2 = bodyOf r2
        Assert.That(b2, Is.EqualTo "hello /b")

        Assert.That(
            take events,
            Is.EqualTo(
                box
                    [
                        sprintf "GetConn 127.0.0.1:%d" k.Port
                        "GotConn reused=true idle=true"
                        "WroteHeaderField Host"
                        "WroteHeaders"
                        "WroteRequest ok"
                        "GotFirstResponseByte"
                        "PutIdleConn ok"
                    ]
            )
        )

        Assert.That(idle, Is.EqualTo(TimeSpan.FromMilliseconds 20.0), "idle time as the Transport's clock says")
    }
    |> sync

[<Test>]
let ``two concurrent requests to localhost share one DNS lookup`` () =
    task {
        use k = Kestrel.Plain hello
        use client = new HttpClient(new Transport())
        use leaderStarted = new SemaphoreSlim(0)
        use joinerStarted = new SemaphoreSlim(0)
        let e1, t1 = recorder ""
        let e2, t2 = recorder ""
        // The leader's DnsStart waits until the joiner has joined, so the lookup is still in flight.
        let hold =
            ClientTrace(
                DnsStart =
                    fun _ ->
                        leaderStarted.Release() |> ignore
                        joinerStarted.Wait(TimeSpan.FromSeconds 10.0) |> ignore
            )

        let signal = ClientTrace(DnsStart = fun _ -> joinerStarted.Release() |> ignore)
        let uri = Uri(sprintf "http://localhost:%d/dns" k.Port)

        let first =
            Task.Run<HttpResponseMessage>(
                Func<Task<HttpResponseMessage>>(fun () -> client.SendAsync((getWith uri t1).WithClientTrace hold))
            )

        let! _ = leaderStarted.WaitAsync(TimeSpan.FromSeconds 10.0)
        let second = client.SendAsync((getWith uri t2).WithClientTrace signal)

        let! responses =
            Task.WhenAll([| first; second |]).WaitAsync(TimeSpan.FromSeconds 20.0)

        for r in responses do
            let! b = bodyOf r
            Assert.That(b, Is.EqualTo "hello /dns")

        let l1 = take e1
        let l2 = take e2

        Assert.That(
            l1 |> List.filter (fun s -> s.StartsWith "Dns"),
            Is.EqualTo(box [ "DnsStart localhost"; "DnsDone coalesced=false error=false" ])
        )

        Assert.That(
            l2 |> List.filter (fun s -> s.StartsWith "Dns"),
            Is.EqualTo(box [ "DnsStart localhost"; "DnsDone coalesced=true error=false" ])
        )
        // Each address tried is reported; the last attempt connected.
        Assert.That(
            l1 |> List.filter (fun s -> s.StartsWith "ConnectDone") |> List.last,
            Is.EqualTo "ConnectDone tcp error=false"
        )
    }
    |> sync

[<Test>]
let ``TLS: handshake hooks with ALPN http/1.1 and the server certificate`` () =
    task {
        use cert = makeCertificate ()
        use k = Kestrel.Tls(hello, cert, false)
        let mutable seenCert: Security.Cryptography.X509Certificates.X509Certificate = null
        let mutable protocol = Security.Authentication.SslProtocols.None

        let transport =
            new Transport(
                ServerCertificateValidation =
                    (fun _ c _ _ -> not (isNull c) && c.GetCertHashString() = cert.GetCertHashString())
            )

        use client = new HttpClient(transport)
        let events, trace = recorder ""

        let tls =
            ClientTrace(
                TlsHandshakeDone =
                    fun i ->
                        seenCert <- i.State.RemoteCertificate
                        protocol <- i.State.Protocol
            )

        use! r = client.SendAsync((getWith (k.Uri "/tls") trace).WithClientTrace tls)
        let! b = bodyOf r
        Assert.That(b, Is.EqualTo "hello /tls")

        Assert.That(
            take events,
            Is.EqualTo(
                box
                    [
                        sprintf "GetConn 127.0.0.1:%d" k.Port
                        "ConnectStart tcp"
                        "ConnectDone tcp error=false"
                        "TlsHandshakeStart"
                        "TlsHandshakeDone alpn=http/1.1 error=false"
                        "GotConn reused=false idle=false"
                        "WroteHeaderField Host"
                        "WroteHeaders"
                        "WroteRequest ok"
                        "GotFirstResponseByte"
                        "PutIdleConn ok"
                    ]
            )
        )

        Assert.That(seenCert.GetCertHashString(), Is.EqualTo(cert.GetCertHashString()))
        Assert.That(protocol, Is.Not.EqualTo Security.Authentication.SslProtocols.None)
    }
    |> sync

[<Test>]
let ``DNS failure and connection refused fail with HttpRequestException and say so in the hooks`` () =
    task {
        use client = new HttpClient(new Transport())
        let events, trace = recorder ""

        let ex =
            Assert.ThrowsAsync<HttpRequestException>(fun () ->
                client.SendAsync(getWith (Uri "http://no-such-host.invalid/") trace) :> Task)

        Assert.That(ex.Message, Does.Contain "no-such-host.invalid")

        Assert.That(
            take events,
            Is.EqualTo(
                box
                    [
                        "GetConn no-such-host.invalid:80"
                        "DnsStart no-such-host.invalid"
                        "DnsDone coalesced=false error=true"
                    ]
            )
        )

        // A port nobody listens on.
        let l = new TcpListener(IPAddress.Loopback, 0)
        l.Start()
        let port = (l.LocalEndpoint :?> IPEndPoint).Port
        l.Stop()

        let refused =
            Assert.ThrowsAsync<HttpRequestException>(fun () ->
                client.SendAsync(getWith (Uri(sprintf "http://127.0.0.1:%d/" port)) trace) :> Task)

        Assert.That(refused.InnerException, Is.InstanceOf<SocketException>())

        Assert.That(
            take events,
            Is.EqualTo(
                box
                    [
                        sprintf "GetConn 127.0.0.1:%d" port
                        "ConnectStart tcp"
                        "ConnectDone tcp error=true"
                    ]
            )
        )
    }
    |> sync

// ---------------------------------------------------------------------------------------------
// Scripted raw servers.

/// Reads one request head (up to the empty line) from `s`.
/// Reads exactly `n` bytes from `s`.
let readExactly (s: Stream) (n: int) =
    task {
        let b = Array.zeroCreate<byte> n
        do! s.ReadExactlyAsync(b, 0, n)
        return Encoding.Latin1.GetString b
    }

/// A server that runs `script index stream` on each connection it accepts, in order.
let private post (uri: Uri) (body: string) (trace: ClientTrace) =
    let r =
        new HttpRequestMessage(HttpMethod.Post, uri, Content = new StringContent(body))

    r.Headers.ExpectContinue <- true
    r.WithClientTrace trace

[<Test>]
let ``100-continue accepted: the body waits for 100 Continue`` () =
    task {
        let bodySeen = TaskCompletionSource<string>()

        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! head = readHead s
                    Assert.That(head, Does.Contain "Expect: 100-continue")
                    do! writeText s "HTTP/1.1 100 Continue\r\n\r\n"
                    let! body = readExactly s 5
                    bodySeen.SetResult body
                    do! writeText s "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    let! _ = readHead s // until the client closes
                    ()
                })

        use client =
            new HttpClient(new Transport(ExpectContinueTimeout = TimeSpan.FromSeconds 30.0))

        let events, trace = recorder ""
        use! r = client.SendAsync(post (server.Uri "/up") "hello" trace)
        let! b = bodyOf r
        Assert.That(b, Is.EqualTo "ok")
        let! seen = bodySeen.Task
        Assert.That(seen, Is.EqualTo "hello")

        Assert.That(
            take events |> List.filter (fun s -> not (s.StartsWith "WroteHeaderField")),
            Is.EqualTo(
                box
                    [
                        sprintf "GetConn 127.0.0.1:%d" server.Port
                        "ConnectStart tcp"
                        "ConnectDone tcp error=false"
                        "GotConn reused=false idle=false"
                        "WroteHeaders"
                        "Wait100Continue"
                        "GotFirstResponseByte"
                        "Got100Continue"
                        "WroteRequest ok"
                        "PutIdleConn ok"
                    ]
            )
        )
    }
    |> sync

[<Test>]
let ``100-continue rejected: a final answer first, the body is never sent, the connection is not reused`` () =
    task {
        let extra = TaskCompletionSource<int>()

        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n"
                    // Whatever arrives now would be the body: the client must send none and close.
                    let buf = Array.zeroCreate<byte> 64
                    let! n = s.ReadAsync(buf, 0, 64)
                    extra.SetResult n
                })

        use client =
            new HttpClient(new Transport(ExpectContinueTimeout = TimeSpan.FromSeconds 30.0))

        let events, trace = recorder ""
        use! r = client.SendAsync(post (server.Uri "/up") "hello" trace)
        Assert.That(int r.StatusCode, Is.EqualTo 417)
        let! _ = bodyOf r
        let! n = extra.Task.WaitAsync(TimeSpan.FromSeconds 10.0)
        Assert.That(n, Is.EqualTo 0, "no body bytes; the connection was closed")

        let lines =
            take events |> List.filter (fun s -> not (s.StartsWith "WroteHeaderField"))

        Assert.That(
            lines |> List.skip 4,
            Is.EqualTo(
                box
                    [
                        "WroteHeaders"
                        "Wait100Continue"
                        "GotFirstResponseByte"
                        "WroteRequest ok"
                        "PutIdleConn error"
                    ]
            )
        )
    }
    |> sync

[<Test>]
let ``103 Early Hints goes to Got1xxResponse and is skipped`` () =
    task {
        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                    do! writeText s "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    let! _ = readHead s
                    ()
                })

        use client = new HttpClient(new Transport())
        let events, trace = recorder ""
        let mutable link = ""

        let hints =
            ClientTrace(Got1xxResponse = fun i -> link <- i.Headers.GetValues("Link") |> String.concat ",")

        use! r = client.SendAsync((getWith (server.Uri "/") trace).WithClientTrace hints)
        let! b = bodyOf r
        Assert.That(b, Is.EqualTo "ok")
        Assert.That(link, Is.EqualTo "</style.css>; rel=preload")

        Assert.That(
            take events |> List.skip 4,
            Is.EqualTo(
                box
                    [
                        "WroteHeaderField Host"
                        "WroteHeaders"
                        "WroteRequest ok"
                        "GotFirstResponseByte"
                        "Got1xxResponse 103"
                        "PutIdleConn ok"
                    ]
            )
        )
    }
    |> sync

[<Test>]
let ``a server that closes an idle connection: the request is retried once on a new connection`` () =
    task {
        use server =
            new ScriptedServer(fun i s ->
                task {
                    let! _ = readHead s
                    do! writeText s (sprintf "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc%d" i)

                    if i = 0 then
                        // Read the second request, then close without a byte of answer.
                        let! _ = readHead s
                        ()
                    else
                        let! _ = readHead s
                        ()
                })

        use client = new HttpClient(new Transport())
        let events, trace = recorder ""
        use! r1 = client.SendAsync(getWith (server.Uri "/1") trace)
        let! b1 = bodyOf r1
        Assert.That(b1, Is.EqualTo "c0")
        take events |> ignore
        use! r2 = client.SendAsync(getWith (server.Uri "/2") trace)
        let! b2 = bodyOf r2
        Assert.That(b2, Is.EqualTo "c1", "answered on the second connection")
        Assert.That(server.Connections, Is.EqualTo 2)

        Assert.That(
            take events,
            Is.EqualTo(
                box
                    [
                        sprintf "GetConn 127.0.0.1:%d" server.Port
                        "GotConn reused=true idle=true"
                        "WroteHeaderField Host"
                        "WroteHeaders"
                        "WroteRequest ok"
                        sprintf "GetConn 127.0.0.1:%d" server.Port
                        "ConnectStart tcp"
                        "ConnectDone tcp error=false"
                        "GotConn reused=false idle=false"
                        "WroteHeaderField Host"
                        "WroteHeaders"
                        "WroteRequest ok"
                        "GotFirstResponseByte"
                        "PutIdleConn ok"
                    ]
            )
        )

        // A POST with a streamed body is not retried.
        use server2 =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    let! _ = readExactly s 1
                    do! writeText s "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                    let! _ = readHead s
                    ()
                })

        let stream () =
            new HttpRequestMessage(
                HttpMethod.Post,
                server2.Uri "/p",
                Content = new StreamContent(new MemoryStream([| 1uy |]))
            )

        use! p1 = client.SendAsync(stream ())
        let! _ = bodyOf p1

        Assert.ThrowsAsync<HttpRequestException>(fun () -> client.SendAsync(stream ()) :> Task)
        |> ignore

        Assert.That(server2.Connections, Is.EqualTo 1)
    }
    |> sync

[<Test>]
let ``a trace composed twice fires once; composition runs new hooks before old`` () =
    task {
        use k = Kestrel.Plain hello
        use client = new HttpClient(new Transport())
        let order = ConcurrentQueue<string>()
        let a = ClientTrace(GetConn = fun _ -> order.Enqueue "A")
        let b = ClientTrace(GetConn = fun _ -> order.Enqueue "B")
        let req = (getWith (k.Uri "/c") a).WithClientTrace(a)
        use! r = client.SendAsync req
        let! _ = bodyOf r
        Assert.That(List.ofSeq order, Is.EqualTo(box [ "A" ]))
        Assert.That(ClientTrace.FromRequest req, Is.SameAs a)

        order.Clear()

        let req2 =
            (getWith (k.Uri "/c") a).WithClientTrace(b).WithClientTrace(a).WithClientTrace(b)

        use! r2 = client.SendAsync req2
        let! _ = bodyOf r2
        Assert.That(List.ofSeq order, Is.EqualTo(box [ "B"; "A" ]))
        // The caller's traces are untouched.
        Assert.That(ClientTrace.FromRequest(new HttpRequestMessage()), Is.Null)
        order.Clear()
        a.GetConn.Invoke(GetConnInfo "x")
        Assert.That(List.ofSeq order, Is.EqualTo(box [ "A" ]))
    }
    |> sync

[<Test>]
let ``a hook that throws fails the request with ClientTraceException and its connection is not reused`` () =
    task {
        use k = Kestrel.Plain hello
        use client = new HttpClient(new Transport())
        let bad = ClientTrace(WroteHeaders = fun () -> failwith "boom")

        let ex =
            Assert.ThrowsAsync<ClientTraceException>(fun () -> client.SendAsync(getWith (k.Uri "/x") bad) :> Task)

        Assert.That(ex.Hook, Is.EqualTo "WroteHeaders")
        Assert.That(ex.InnerException.Message, Is.EqualTo "boom")
        let events, trace = recorder ""
        use! r = client.SendAsync(getWith (k.Uri "/y") trace)
        let! b = bodyOf r
        Assert.That(b, Is.EqualTo "hello /y")
        Assert.That(take events |> List.item 1, Is.EqualTo "ConnectStart tcp", "a new connection, not the broken one")

        // A Got1xxResponse that throws aborts the request with what it threw.
        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                    let! _ = readHead s
                    ()
                })

        let abort =
            ClientTrace(Got1xxResponse = fun _ -> raise (InvalidOperationException "no hints, thanks"))

        let aborted =
            Assert.CatchAsync(fun () -> client.SendAsync(getWith (server.Uri "/") abort) :> Task)

        Assert.That(aborted.ToString(), Does.Contain "no hints, thanks")
    }
    |> sync

[<Test>]
let ``MaxConnsPerHost queues requests; a finished connection is handed to the waiter`` () =
    task {
        let arrived, release = Countdown 1, Signal()
        use k = Kestrel.Plain(held arrived release)
        use client = new HttpClient(new Transport(MaxConnsPerHost = 1))
        let e1, t1 = recorder "1 "
        let e2, t2 = recorder "2 "
        let first = client.SendAsync(getWith (k.Uri "/slow") t1)
        // The first request holds the only connection (it is at the server) ...
        do! arrived.Wait()
        // ... so the second queues; SendAsync returns once it is queued (nothing awaits before that).
        let second = client.SendAsync(getWith (k.Uri "/fast") t2)
        release.Set()
        use! r1 = first
        let! b1 = bodyOf r1
        use! r2 = second
        let! b2 = bodyOf r2
        Assert.That((b1, b2), Is.EqualTo(("hello /slow", "hello /fast")))
        Assert.That(take e1 |> List.item 3, Is.EqualTo "1 GotConn reused=false idle=false")
        Assert.That(take e2 |> List.item 1, Is.EqualTo "2 GotConn reused=true idle=false", "handed over, never idle")
    }
    |> sync

[<Test>]
let ``idle connections are capped by MaxIdleConnsPerHost and closed after IdleConnTimeout`` () =
    task {
        // Three requests held at the server until all three are there: three connections.
        let arrived, release = Countdown 3, Signal()
        use k = Kestrel.Plain(held arrived release)
        let time = ManualTime()

        let transport =
            new Transport(
                MaxIdleConnsPerHost = 1,
                IdleConnTimeout = TimeSpan.FromMilliseconds 300.0,
                TimeProvider = time
            )

        use client = new HttpClient(transport)
        let e, t = recorder ""
        let sent = [| for _ in 1..3 -> client.SendAsync(getWith (k.Uri "/slow") t) |]
        do! arrived.Wait()
        release.Set()
        let! rs = Task.WhenAll sent

        for r in rs do
            let! _ = bodyOf r
            ()

        let puts = take e |> List.filter (fun s -> s.StartsWith "PutIdleConn")
        Assert.That(puts |> List.filter ((=) "PutIdleConn ok") |> List.length, Is.EqualTo 1)
        Assert.That(transport.IdleConnectionCount, Is.EqualTo 1)
        time.Advance(TimeSpan.FromMilliseconds 200.0)
        Assert.That(transport.IdleConnectionCount, Is.EqualTo 1, "not yet idle for IdleConnTimeout")
        // The sweep runs every second (IdleSweepInterval); by then the connection was idle past 300 ms.
        time.Advance(TimeSpan.FromMilliseconds 800.0)
        Assert.That(transport.IdleConnectionCount, Is.EqualTo 0, "swept after the idle timeout")
    }
    |> sync

[<Test>]
let ``an early disposed body is drained and the connection reused`` () =
    task {
        use k = Kestrel.Plain hello
        use client = new HttpClient(new Transport())
        let e, t = recorder ""
        let backInPool = Signal()

        let putBack =
            ClientTrace(
                PutIdleConn =
                    fun i ->
                        if isNull i.Error then
                            backInPool.Set()
            )

        let! r =
            client.SendAsync((getWith (k.Uri "/d") t).WithClientTrace putBack, HttpCompletionOption.ResponseHeadersRead)

        r.Dispose()
        do! backInPool.Wait()
        use! r2 = client.SendAsync(getWith (k.Uri "/e") t)
        let! b = bodyOf r2
        Assert.That(b, Is.EqualTo "hello /e")
        let lines = take e

        Assert.That(
            lines |> List.filter (fun s -> s.StartsWith "GotConn"),
            Is.EqualTo(box [ "GotConn reused=false idle=false"; "GotConn reused=true idle=true" ])
        )
    }
    |> sync

[<Test>]
let ``forward proxy: http in absolute form, https through a CONNECT tunnel`` () =
    task {
        use k = Kestrel.Plain hello
        // Kestrel accepts absolute-form targets, so it can stand in for an http proxy.
        use viaProxy = new HttpClient(new Transport(Proxy = k.Uri "/"))
        use! r = viaProxy.GetAsync("http://upstream.invalid/through")
        let! b = bodyOf r
        Assert.That(b, Is.EqualTo "hello /through")

        // A CONNECT proxy made of ServerConn and Hijack, tunnelling to an https Kestrel.
        use cert = makeCertificate ()
        use secure = Kestrel.Tls(hello, cert, false)
        let targets = ConcurrentQueue<string>()

        use proxy =
            new ScriptedServer(fun _ s ->
                task {
                    let conn = new ServerConn(s)
                    let! req = conn.ReadAsync()
                    targets.Enqueue(req.GetWireHead().Target)
                    use upstream = new TcpClient()
                    do! upstream.ConnectAsync(IPAddress.Loopback, secure.Port)
                    do! conn.WriteAsync(req, new HttpResponseMessage(HttpStatusCode.OK))
                    let! h = conn.HijackAsync()
                    let up = upstream.GetStream()
                    let toUp = h.Reader.AsStream().CopyToAsync(up)
                    let down = up.CopyToAsync(h.Stream)
                    let! _ = Task.WhenAny(toUp, down)
                    ()
                })

        let transport =
            new Transport(Proxy = proxy.Uri "/", ServerCertificateValidation = (fun _ _ _ _ -> true))

        use tunnelled = new HttpClient(transport)
        use! r2 = tunnelled.GetAsync(sprintf "https://127.0.0.1:%d/secret" secure.Port)
        let! b2 = bodyOf r2
        Assert.That(b2, Is.EqualTo "hello /secret")
        Assert.That(List.ofSeq targets, Is.EqualTo(box [ sprintf "127.0.0.1:%d" secure.Port ]))
    }
    |> sync

[<Test>]
let ``a bare ClientConn fires the write and read hooks`` () =
    task {
        use k = Kestrel.Plain hello
        use! tcp = k.Connect()
        use conn = new ClientConn(tcp.GetStream())
        let events, trace = recorder ""
        use! r = conn.DoAsync(getWith (k.Uri "/bare") trace)
        let! b = bodyOf r
        Assert.That(b, Is.EqualTo "hello /bare")

        Assert.That(
            take events,
            Is.EqualTo(
                box
                    [
                        "WroteHeaderField Host"
                        "WroteHeaders"
                        "WroteRequest ok"
                        "GotFirstResponseByte"
                    ]
            )
        )
    }
    |> sync

[<Test>]
let ``trace composition in the core keeps first places and drops repeats`` () =
    let a, b, c = obj (), obj (), obj ()
    Assert.That(Trace.compose [ b ] [ a ], Is.EqualTo(box [ b; a ]))
    Assert.That(Trace.compose [ a ] [ a ], Is.EqualTo(box [ a ]))
    Assert.That(Trace.compose [ a; b ] [ b; c; a ], Is.EqualTo(box [ a; b; c ]))

[<Test>]
let ``a retried PUT sends its in-memory body again`` () =
    task {
        let bodies = ConcurrentQueue<string>()

        use server =
            new ScriptedServer(fun i s ->
                task {
                    let! _ = readHead s
                    let! b = readExactly s 4
                    bodies.Enqueue b
                    do! writeText s (sprintf "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc%d" i)
                    let! _ = readHead s

                    if i > 0 then
                        let! _ = readHead s
                        ()
                })

        use client = new HttpClient(new Transport())

        let put () =
            new HttpRequestMessage(HttpMethod.Put, server.Uri "/r", Content = new ByteArrayContent("data"B))

        use! r1 = client.SendAsync(put ())
        let! _ = bodyOf r1
        let req = put ()
        use! r2 = client.SendAsync req
        let! b2 = bodyOf r2
        Assert.That(b2, Is.EqualTo "c1")
        Assert.That(List.ofSeq bodies, Is.EqualTo(box [ "data"; "data" ]), "the second connection got the whole body")
    }
    |> sync

[<Test>]
let ``100-continue unanswered: the body goes after ExpectContinueTimeout`` () =
    task {
        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    let! body = readExactly s 5 // no 100 Continue: the client must send anyway
                    do! writeText s (sprintf "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n%s" body)
                    let! _ = readHead s
                    ()
                })

        use client =
            new HttpClient(new Transport(ExpectContinueTimeout = TimeSpan.FromMilliseconds 200.0))

        let events, trace = recorder ""
        use! r = client.SendAsync(post (server.Uri "/up") "hello" trace)
        let! b = bodyOf r
        Assert.That(b, Is.EqualTo "hello")

        let lines =
            take events |> List.filter (fun s -> not (s.StartsWith "WroteHeaderField"))

        Assert.That(
            lines |> List.skip 4 |> List.take 3,
            Is.EqualTo(box [ "WroteHeaders"; "Wait100Continue"; "WroteRequest ok" ])
        )

        Assert.That(lines, Does.Not.Contain "Got100Continue")
    }
    |> sync

[<Test>]
let ``cancellation: waiting for a response, and waiting for a connection at MaxConnsPerHost`` () =
    task {
        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    let! _ = readToEnd s // never answers: waits until the client gives up and closes
                    ()
                })

        use client = new HttpClient(new Transport(MaxConnsPerHost = 1))
        use cts = new CancellationTokenSource(200)
        let first = client.GetAsync(server.Uri "/hang", cts.Token)
        use cts2 = new CancellationTokenSource(300)
        // Queued behind the first request (one connection allowed), then cancelled while queued.
        let second = client.GetAsync(server.Uri "/queued", cts2.Token)
        Assert.CatchAsync<OperationCanceledException>(fun () -> first :> Task) |> ignore

        Assert.CatchAsync<OperationCanceledException>(fun () -> second :> Task)
        |> ignore
        // The cancelled exchange's connection was discarded; its place is free again.
        use k = Kestrel.Plain hello
        use! r = client.GetAsync(k.Uri "/after")
        let! b = bodyOf r
        Assert.That(b, Is.EqualTo "hello /after")
        use cts3 = new CancellationTokenSource(200)

        Assert.CatchAsync<OperationCanceledException>(fun () ->
            client.GetAsync(server.Uri "/hang2", cts3.Token) :> Task)
        |> ignore
    }
    |> sync

[<Test>]
let ``TLS client certificates are offered to a server that requires one`` () =
    task {
        use cert = makeCertificate ()
        use clientCert = makeCertificate ()

        let handler (ctx: HttpContext) : Task =
            let c = ctx.Connection.ClientCertificate
            ctx.Response.WriteAsync(if isNull c then "none" else c.GetCertHashString())

        use k = Kestrel.Tls(handler, cert, true)

        let certs =
            Security.Cryptography.X509Certificates.X509CertificateCollection(
                [| clientCert :> Security.Cryptography.X509Certificates.X509Certificate |]
            )

        use client =
            new HttpClient(
                new Transport(ServerCertificateValidation = (fun _ _ _ _ -> true), ClientCertificates = certs)
            )

        use! r = client.GetAsync(k.Uri "/who")
        let! b = bodyOf r
        Assert.That(b, Is.EqualTo(clientCert.GetCertHashString()))

        // Without a certificate the handshake (or the first read) fails with HttpRequestException.
        use bare =
            new HttpClient(new Transport(ServerCertificateValidation = (fun _ _ _ _ -> true)))

        Assert.CatchAsync<HttpRequestException>(fun () -> bare.GetAsync(k.Uri "/who") :> Task)
        |> ignore
    }
    |> sync

[<Test>]
let ``GetConn brackets an IPv6 host as host:port does`` () =
    task {
        use client =
            new HttpClient(new Transport(ConnectTimeout = TimeSpan.FromSeconds 2.0))

        let events, trace = recorder ""
        // Whether or not this machine has IPv6, GetConn comes first and names the target.
        try
            let! r = client.SendAsync(getWith (Uri "http://[::1]:1/") trace)
            r.Dispose()
        with _ ->
            ()

        Assert.That(take events |> List.head, Is.EqualTo "GetConn [::1]:1")
    }
    |> sync

/// The GotConn lines of a run of trace events.
let private gotConns (events: ConcurrentQueue<string>) =
    take events |> List.filter (fun (e: string) -> e.StartsWith "GotConn")

[<Test>]
let ``an idle connection the server closed: checked before a request that may not be sent again, retried after one that may``
    ()
    =
    task {
        // Each connection answers one request, then the server closes it (no Connection: close)
        // and says so, so the close has reached the client before its next request.
        let closed = Array.init 8 (fun _ -> Signal())

        use server =
            new ScriptedServer(fun i s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    s.Socket.Shutdown SocketShutdown.Both
                    s.Close()
                    closed[i].Set()
                })

        let time = ManualTime() // idle time stays zero: below IdleProbeAfter whatever the machine does
        let events, trace = recorder ""

        let run (transport: Transport) (second: unit -> HttpRequestMessage) =
            task {
                use client = new HttpClient(transport)
                let first = server.Connections
                use! r1 = client.SendAsync(getWith (server.Uri "/1") trace)
                let! _ = bodyOf r1
                do! closed[first].Wait()
                take events |> ignore
                use! r2 = client.SendAsync(second ())
                let! b2 = bodyOf r2
                Assert.That(b2, Is.EqualTo "ok")
                return gotConns events
            }

        // A POST of a streamed body may not be sent again: the idle connection is polled, found
        // closed, and the POST goes out on a new connection at once.
        let post () =
            (new HttpRequestMessage(
                HttpMethod.Post,
                server.Uri "/post",
                Content = new StreamContent(new MemoryStream([| 1uy |]))
            ))
                .WithClientTrace
                trace

        let! postConns = run (new Transport(TimeProvider = time)) post
        Assert.That(postConns, Is.EqualTo(box [ "GotConn reused=false idle=false" ]))

        // A GET may be sent again: within IdleProbeAfter it goes out on the idle connection at once,
        // meets the close, and is sent again on a new connection.
        let! getConns =
            run (new Transport(TimeProvider = time)) (fun () -> getWith (server.Uri "/2") trace)

        Assert.That(getConns, Is.EqualTo(box [ "GotConn reused=true idle=true"; "GotConn reused=false idle=false" ]))

        // With IdleProbeAfter = 0 even a GET checks first, and never meets the close.
        let! probedConns =
            run (new Transport(TimeProvider = time, IdleProbeAfter = TimeSpan.Zero)) (fun () ->
                getWith (server.Uri "/3") trace)

        Assert.That(probedConns, Is.EqualTo(box [ "GotConn reused=false idle=false" ]))
    }
    |> sync

/// A server that reads whatever comes and never answers, until the client goes away.
let private silent () =
    new ScriptedServer(fun _ s ->
        task {
            let! _ = readToEnd s
            ()
        })

[<Test>]
let ``ResponseHeaderTimeout: no head in time fails with a TimeoutException that names it, and nothing is sent again``
    ()
    =
    task {
        use server = silent ()

        use client =
            new HttpClient(new Transport(ResponseHeaderTimeout = Nullable(TimeSpan.FromMilliseconds 300.0)))

        let! ex =
            task {
                try
                    let! _ = client.GetAsync(server.Uri "/slow")
                    return null
                with e ->
                    return e
            }

        Assert.That(ex, Is.InstanceOf<HttpRequestException>())
        Assert.That(ex.InnerException, Is.InstanceOf<TimeoutException>())
        Assert.That(ex.InnerException.Message, Does.Contain "ResponseHeaderTimeout")
        Assert.That(server.Connections, Is.EqualTo 1, "a timed-out request is not sent again")
    }
    |> sync

[<Test>]
let ``TlsHandshakeTimeout: a peer that never answers the handshake fails with a TimeoutException that names it`` () =
    task {
        use server = silent ()

        use client =
            new HttpClient(new Transport(TlsHandshakeTimeout = Nullable(TimeSpan.FromMilliseconds 300.0)))

        let! ex =
            task {
                try
                    let! _ = client.GetAsync(Uri(sprintf "https://127.0.0.1:%d/" server.Port))
                    return null
                with e ->
                    return e
            }

        Assert.That(ex, Is.InstanceOf<HttpRequestException>())
        Assert.That(ex.InnerException, Is.InstanceOf<TimeoutException>(), string ex)
        Assert.That(ex.InnerException.Message, Does.Contain "TlsHandshakeTimeout")
    }
    |> sync
