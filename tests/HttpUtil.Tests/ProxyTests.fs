/// ReverseProxy on a real Kestrel front, forwarding to real upstreams on 127.0.0.1 (Kestrel, and scripted
/// sockets where a response must be shaped by hand); clients are HttpClient, ClientWebSocket, curl and raw sockets.
module HttpUtil.Tests.ProxyTests

open System
open System.Collections.Concurrent
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Net.WebSockets
open System.Text
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Server.Kestrel.Core
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open NUnit.Framework
open HttpUtil
open HttpUtil.Core
open HttpUtil.Tests.Support

/// An ASP.NET Core app on 127.0.0.1 (a port chosen by the OS), HTTP/1.1 or HTTP/2 (cleartext, prior knowledge).
type Web(configure: WebApplication -> unit, http2: bool) =
    let app =
        let builder = WebApplication.CreateSlimBuilder()
        builder.Logging.ClearProviders() |> ignore

        builder.WebHost.UseKestrel(fun o ->
            o.Limits.MaxRequestBodySize <- Nullable()

            o.Listen(
                IPAddress.Loopback,
                0,
                fun lo -> lo.Protocols <- (if http2 then HttpProtocols.Http2 else HttpProtocols.Http1)
            ))
        |> ignore

        let app = builder.Build()
        configure app
        app

    do app.StartAsync().GetAwaiter().GetResult()

    let port = listeningPort app

    member _.Port = port

    member _.Uri(path: string) =
        Uri(sprintf "http://127.0.0.1:%d%s" port path)

    interface IAsyncDisposable with
        member _.DisposeAsync() = app.DisposeAsync()

/// A proxy front: `proxy` mapped at every path.
let front (proxy: ReverseProxy) =
    new Web((fun app -> app.MapReverseProxy("/{**rest}", proxy) |> ignore), false)

/// A proxy front speaking HTTP/2 only (cleartext, prior knowledge).
let front2 (proxy: ReverseProxy) =
    new Web((fun app -> app.MapReverseProxy("/{**rest}", proxy) |> ignore), true)

/// A request HttpClient sends as HTTP/2 (prior knowledge) or not at all.
let http2Request (method: HttpMethod) (uri: Uri) =
    new HttpRequestMessage(
        method,
        uri,
        Version = HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionExact
    )

/// A logger that keeps every entry.
type ListLogger() =
    let entries = ConcurrentQueue<LogLevel * string>()
    member _.Entries = List.ofSeq entries

    member _.Has(level: LogLevel, text: string) =
        entries |> Seq.exists (fun (l, m) -> l = level && m.Contains text)

    interface ILogger with
        member _.BeginScope<'TState>(_state: 'TState) : IDisposable = null
        member _.IsEnabled(_level: LogLevel) = true

        member _.Log<'TState>
            (level: LogLevel, _id: EventId, state: 'TState, ex: exn, formatter: Func<'TState, exn, string>)
            =
            entries.Enqueue((level, formatter.Invoke(state, ex) + (if isNull ex then "" else " | " + ex.Message)))

/// An upstream that answers with what it received: method, target, then each field as `name: value` (lower-case
/// names, one line per value), then the body's length.
let echo (ctx: HttpContext) : Task =
    task {
        let r = ctx.Request
        let sb = StringBuilder()

        let raw =
            ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>().RawTarget

        sb.Append(sprintf "method %s\ntarget %s\n" r.Method raw) |> ignore

        for h in r.Headers do
            for v in h.Value do
                sb.Append(sprintf "%s: %s\n" (h.Key.ToLowerInvariant()) v) |> ignore

        use ms = new MemoryStream()
        do! r.Body.CopyToAsync ms
        sb.Append(sprintf "body %d\n" ms.Length) |> ignore
        do! ctx.Response.WriteAsync(sb.ToString())
    }

/// An `echo` upstream that counts the requests it got.
let countingEcho () =
    let hits = ref 0

    let server =
        Kestrel.Plain(fun ctx ->
            Interlocked.Increment(&hits.contents) |> ignore
            echo ctx)

    server, hits

let lines (s: string) =
    s.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> List.ofArray

let private fieldLines (name: string) (s: string) =
    lines s |> List.filter (fun l -> l.StartsWith(name.ToLowerInvariant() + ": "))

/// Sends `request` (raw text, which must end the connection) to `port`; returns everything the server sent.
let rawExchange (port: int) (request: string) =
    task {
        use c = new TcpClient()
        do! c.ConnectAsync(IPAddress.Loopback, port)
        let s = c.GetStream()
        do! writeText s request
        let! bytes = readToEnd s |> within 20.0
        return text bytes
    }

/// A last request that ends the connection. Tests send the request under test first and this one after it:
/// Kestrel rewrites a `Connection` field that lists `close` or `keep-alive` to just that token, so the other
/// options it named never reach the application (see the README's ReverseProxy notes).
let closing = "GET /end HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

let private get (client: HttpClient) (uri: Uri) =
    task {
        use! r = client.GetAsync(uri)
        let! body = r.Content.ReadAsStringAsync()
        return int r.StatusCode, body
    }

[<Test>]
let ``the spec's example: a backend's text reaches the client through NewSingleHost`` () =
    task {
        use backend =
            Kestrel.Plain(fun ctx -> ctx.Response.WriteAsync "this call was relayed by the reverse proxy")

        let proxy = ReverseProxy.NewSingleHost(backend.Uri "/")
        use frontend = front proxy
        use client = new HttpClient()
        let! status, body = get client (frontend.Uri "/")
        Assert.That(status, Is.EqualTo 200)
        Assert.That(body, Is.EqualTo "this call was relayed by the reverse proxy")
    }
    |> sync

[<Test>]
let ``request: hop-by-hop fields and every field Connection names are dropped; Te trailers is kept`` () =
    task {
        use upstream = Kestrel.Plain echo
        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))

        let! reply =
            rawExchange
                frontend.Port
                ("GET /h HTTP/1.1\r\nHost: front.example\r\nConnection: X-Secret, Te\r\nX-Secret: 1\r\n"
                 + "Keep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\n"
                 + "Upgrade: websocket\r\nTe: gzip, trailers\r\nX-Kept: yes\r\n\r\n"
                 + closing)

        let body = reply.Substring(0, reply.IndexOf "target /end")

        for gone in
            [
                "x-secret"
                "keep-alive"
                "proxy-authorization"
                "proxy-connection"
                "upgrade"
                "connection"
            ] do
            Assert.That(fieldLines gone body, Is.Empty, gone)

        Assert.That(fieldLines "te" body, Is.EqualTo(box [ "te: trailers" ]))
        Assert.That(fieldLines "x-kept" body, Is.EqualTo(box [ "x-kept: yes" ]))

        Assert.That(
            fieldLines "host" body,
            Is.EqualTo(box [ "host: front.example" ]),
            "Host stays as the client sent it"
        )
    }
    |> sync

/// An upstream that answers every request on a connection with `response` (raw), after reading the head.
let scripted (response: string) =
    new ScriptedServer(fun _ s ->
        task {
            let! _ = readHead s
            do! writeText s response
        })

[<Test>]
let ``response: hop-by-hop fields and every field Connection names are dropped; Set-Cookie fields stay apart`` () =
    task {
        use upstream =
            scripted (
                "HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\n"
                + "Proxy-Authenticate: Basic\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"
            )

        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))

        let! reply =
            rawExchange frontend.Port "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

        let head = reply.Substring(0, reply.IndexOf "\r\n\r\n").ToLowerInvariant()
        Assert.That(head, Does.StartWith "http/1.1 200")
        Assert.That(head, Does.Not.Contain "x-internal")
        Assert.That(head, Does.Not.Contain "keep-alive")
        Assert.That(head, Does.Not.Contain "proxy-authenticate")
        Assert.That(head, Does.Contain "set-cookie: a=1\r\nset-cookie: b=2")
        Assert.That(head, Does.Contain "x-kept: yes")
        Assert.That(reply, Does.EndWith "\r\n\r\nok")
    }
    |> sync

[<Test>]
let ``Director: the client's address is appended to X-Forwarded-For; OmitXForwardedFor leaves it out`` () =
    task {
        use upstream = Kestrel.Plain echo
        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))
        use client = new HttpClient()
        use req = new HttpRequestMessage(HttpMethod.Get, frontend.Uri "/")
        req.Headers.Add("X-Forwarded-For", "203.0.113.9")
        use! r = client.SendAsync req
        let! body = r.Content.ReadAsStringAsync()
        Assert.That(fieldLines "x-forwarded-for" body, Is.EqualTo(box [ "x-forwarded-for: 203.0.113.9, 127.0.0.1" ]))
        Assert.That(fieldLines "x-forwarded-host" body, Is.Empty, "a Director sets X-Forwarded-For only, as Go's does")

        let omit = ReverseProxy.NewSingleHost(upstream.Uri "/")
        omit.OmitXForwardedFor <- true
        use front2 = front omit
        let! _, body2 = get client (front2.Uri "/")
        Assert.That(fieldLines "x-forwarded-for" body2, Is.Empty)
    }
    |> sync

[<Test>]
let ``Director: a field it adds is still dropped when the client's Connection names it (Go's documented hazard)`` () =
    task {
        use upstream = Kestrel.Plain echo
        let target = upstream.Uri "/"
        let single = ReverseProxy.NewSingleHost target
        let inner = single.Director

        single.Director <-
            fun r ->
                inner.Invoke r
                r.Headers.Add("X-Auth", "from-director")
                r.Headers.Add("X-Other", "kept")

        use frontend = front single

        let! reply =
            rawExchange frontend.Port ("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Auth\r\n\r\n" + closing)

        let reply = reply.Substring(0, reply.IndexOf "target /end")
        Assert.That(fieldLines "x-auth" reply, Is.Empty)
        Assert.That(fieldLines "x-other" reply, Is.EqualTo(box [ "x-other: kept" ]))
    }
    |> sync

[<Test>]
let ``Rewrite: client-sent forwarding fields are dropped before the hook; SetXForwarded and SetForwarded set them`` () =
    task {
        use upstream = Kestrel.Plain echo
        let target = upstream.Uri "/base"

        let proxy =
            ReverseProxy(
                Rewrite =
                    fun pr ->
                        Assert.That(pr.Out.Headers.Contains "X-Forwarded-For", Is.False)
                        Assert.That(pr.Out.Headers.Contains "Forwarded", Is.False)
                        pr.SetUrl target
                        pr.SetXForwarded()
                        pr.SetForwarded()
                        pr.Out.Headers.Add("X-Added", "by-rewrite")
            )

        use frontend = front proxy

        let! reply =
            rawExchange
                frontend.Port
                ("GET /x?q=1 HTTP/1.1\r\nHost: front.example:8080\r\nConnection: X-Added\r\n"
                 + "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\n\r\n"
                 + "GET /second HTTP/1.1\r\nHost: front.example:8080\r\nConnection: close\r\n\r\n")

        Assert.That(lines reply, Does.Contain "target /base/x?q=1")
        let reply = reply.Substring(0, reply.IndexOf "target /base/second")
        Assert.That(fieldLines "x-forwarded-for" reply, Is.EqualTo(box [ "x-forwarded-for: 127.0.0.1" ]))
        Assert.That(fieldLines "x-forwarded-host" reply, Is.EqualTo(box [ "x-forwarded-host: front.example:8080" ]))
        Assert.That(fieldLines "x-forwarded-proto" reply, Is.EqualTo(box [ "x-forwarded-proto: http" ]))

        Assert.That(
            fieldLines "forwarded" reply,
            Is.EqualTo(box [ "forwarded: for=127.0.0.1;host=\"front.example:8080\";proto=http" ])
        )

        Assert.That(fieldLines "x-added" reply, Is.EqualTo(box [ "x-added: by-rewrite" ]), "what Rewrite sets is sent")

        Assert.That(
            fieldLines "host" reply,
            Is.EqualTo(box [ sprintf "host: 127.0.0.1:%d" upstream.Port ]),
            "SetUrl sets Host"
        )
    }
    |> sync

[<Test>]
let ``hostile: Connection naming X-Forwarded-For and Host cannot hide the client's address or the Host`` () =
    task {
        use upstream = Kestrel.Plain echo
        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))

        let! reply =
            rawExchange
                frontend.Port
                ("GET /first HTTP/1.1\r\nHost: front.example\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: X-Forwarded-For, Host\r\n\r\n"
                 + closing)

        Assert.That(reply, Does.StartWith "HTTP/1.1 200")
        let first = reply.Substring(0, reply.IndexOf "target /end")
        Assert.That(fieldLines "x-forwarded-for" first, Is.EqualTo(box [ "x-forwarded-for: 127.0.0.1" ]))
        Assert.That(fieldLines "host" first, Has.Length.EqualTo 1, "exactly one Host reaches the upstream")
    }
    |> sync

[<Test>]
let ``hostile: smuggling shapes are refused or re-framed; the upstream sees exactly the requests the front parsed`` () =
    task {
        let seenByFront = ConcurrentQueue<string>()
        let seenByUpstream = ConcurrentQueue<string>()

        use upstream =
            Kestrel.Plain(fun ctx ->
                seenByUpstream.Enqueue(ctx.Request.Path.Value)
                echo ctx)

        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")

        proxy.Proxy <-
            fun ctx _ ->
                seenByFront.Enqueue(ctx.Request.Path.Value)
                ValueTask<ProxyOutcome>(ProxyOutcome.Forward)

        use frontend = front proxy
        let smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

        for shape, refused in
            [
                // Kestrel reads by Transfer-Encoding; the proxy sends the body it read, framed afresh.
                "POST /cl-te HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                + smuggled,
                false
                "POST /two-cl HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"
                + smuggled,
                true
                "POST /te-last HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
                + smuggled,
                true
                "GET /space HTTP/1.1\r\nHost: a\r\nX-Bad : 1\r\n\r\n" + smuggled, true
            ] do
            seenByFront.Clear()
            seenByUpstream.Clear()
            let! reply = rawExchange frontend.Port (shape + closing)

            if refused then
                Assert.That(reply, Does.StartWith "HTTP/1.1 400", shape)

            Assert.That(List.ofSeq seenByUpstream, Is.EqualTo(box (List.ofSeq seenByFront)), shape)
    }
    |> sync

[<Test>]
let ``no User-Agent is added when the client sent none`` () =
    task {
        use upstream = Kestrel.Plain echo
        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))

        let! reply =
            rawExchange frontend.Port "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

        Assert.That(fieldLines "user-agent" reply, Is.Empty)
    }
    |> sync

[<Test>]
let ``NewSingleHost joins paths with one slash, keeps raw paths, merges queries`` () =
    task {
        use upstream = Kestrel.Plain echo
        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/base/?t=1"))

        let! reply =
            rawExchange frontend.Port "GET /a%2Fb/c?x=2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

        Assert.That(lines reply, Does.Contain "target /base/a%2Fb/c?t=1&x=2")
        use front2 = front (ReverseProxy.NewSingleHost(upstream.Uri "/base"))

        let! reply2 =
            rawExchange front2.Port "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

        Assert.That(lines reply2, Does.Contain "target /base/")
    }
    |> sync

[<Test>]
let ``a query with a semicolon or a bad escape is sanitized, and that is logged once`` () =
    task {
        use upstream = Kestrel.Plain echo
        let log = ListLogger()
        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")
        proxy.ErrorLog <- log
        use frontend = front proxy

        for _ in 1..2 do
            let! reply =
                rawExchange frontend.Port "GET /?a=1;b=2&c=3&d=%zz&e=5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

            Assert.That(lines reply, Does.Contain "target /?c=3&e=5")

        let warnings = log.Entries |> List.filter (fun (l, _) -> l = LogLevel.Warning)
        Assert.That(warnings, Has.Length.EqualTo 1)
    }
    |> sync

[<Test>]
let ``the Proxy hook may answer itself: nothing reaches the upstream`` () =
    task {
        let upstream, hits = countingEcho ()
        use upstream = upstream

        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")

        proxy.Proxy <-
            fun ctx outgoing ->
                if ctx.Request.Path.StartsWithSegments(PathString "/local") then
                    task {
                        ctx.Response.StatusCode <- 418
                        do! ctx.Response.WriteAsync "answered by the hook"
                        return ReverseProxy.ErrHandled
                    }
                    |> ValueTask<ProxyOutcome>
                else
                    outgoing.Headers.Add("X-Hook", "seen")
                    ValueTask<ProxyOutcome>(ProxyOutcome.Forward)

        use frontend = front proxy
        use client = new HttpClient()
        let! status, body = get client (frontend.Uri "/local")
        Assert.That(status, Is.EqualTo 418)
        Assert.That(body, Is.EqualTo "answered by the hook")
        Assert.That(hits.Value, Is.EqualTo 0)
        let! status2, body2 = get client (frontend.Uri "/remote")
        Assert.That(status2, Is.EqualTo 200)
        Assert.That(fieldLines "x-hook" body2, Is.EqualTo(box [ "x-hook: seen" ]))
        Assert.That(hits.Value, Is.EqualTo 1)
    }
    |> sync

[<Test>]
let ``a hook that throws goes to the ErrorHandler with ProxyError.Hook`` () =
    task {
        let seen = TaskCompletionSource<ReverseProxyException>()

        let proxy =
            ReverseProxy(
                Rewrite = (fun _ -> failwith "boom"),
                ErrorHandler =
                    fun ctx e ->
                        seen.TrySetResult e |> ignore
                        ctx.Response.StatusCode <- e.Status
                        Task.CompletedTask
            )

        use frontend = front proxy
        use client = new HttpClient()
        let! status, _ = get client (frontend.Uri "/")
        Assert.That(status, Is.EqualTo 502)
        let! e = seen.Task |> within 5.0
        Assert.That(e.Error, Is.EqualTo ProxyError.Hook)
        Assert.That(e.InnerException.Message, Is.EqualTo "boom")
    }
    |> sync

[<Test>]
let ``upstream down: 502 and an error in the log`` () =
    task {
        let port =
            use l = new TcpListener(IPAddress.Loopback, 0)
            l.Start()
            (l.LocalEndpoint :?> IPEndPoint).Port

        let log = ListLogger()
        let proxy = ReverseProxy.NewSingleHost(Uri(sprintf "http://127.0.0.1:%d/" port))
        proxy.ErrorLog <- log
        use frontend = front proxy
        use client = new HttpClient()
        let! status, body = get client (frontend.Uri "/")
        Assert.That(status, Is.EqualTo 502)
        Assert.That(body, Is.Empty)

        Assert.That(
            log.Entries
            |> List.exists (fun (l, m) -> l = LogLevel.Error && m.Contains "Upstream"),
            Is.True,
            sprintf "%A" log.Entries
        )
    }
    |> sync

[<Test>]
let ``upstream slower than UpstreamTimeout: 504, and the upstream sees the request cancelled`` () =
    task {
        let cancelled = Signal()

        use upstream =
            Kestrel.Plain(fun ctx ->
                task {
                    try
                        do! Task.Delay(Timeout.Infinite, ctx.RequestAborted)
                    with :? OperationCanceledException ->
                        cancelled.Set()
                })

        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")
        proxy.UpstreamTimeout <- TimeSpan.FromMilliseconds 300.0
        proxy.ErrorLog <- ListLogger()
        use frontend = front proxy
        use client = new HttpClient()
        let! status, _ = get client (frontend.Uri "/")
        Assert.That(status, Is.EqualTo 504)
        do! cancelled.Wait()
    }
    |> sync

[<Test>]
let ``upstream reset mid-body: the client sees an aborted response, not a short one`` () =
    task {
        use upstream =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! writeText s ("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + String('x', 1000))
                    do! s.FlushAsync()
                    s.Socket.LingerState <- LingerOption(true, 0)
                    s.Socket.Close()
                })

        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")
        let log = ListLogger()
        proxy.ErrorLog <- log
        use frontend = front proxy
        use client = new HttpClient()

        let! ex =
            task {
                try
                    let! _ = client.GetStringAsync(frontend.Uri "/")
                    return null
                with e ->
                    return e
            }

        Assert.That(ex, Is.Not.Null, "a truncated body must not read as complete")
        Assert.That(log.Has(LogLevel.Error, "aborted"), Is.True, sprintf "%A" log.Entries)
    }
    |> sync

[<Test>]
let ``upstream reset mid-body of unknown length: the chunked response is aborted, not ended`` () =
    task {
        use upstream =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                    do! s.FlushAsync()
                    s.Socket.LingerState <- LingerOption(true, 0)
                    s.Socket.Close()
                })

        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")
        proxy.ErrorLog <- ListLogger()
        use frontend = front proxy
        use client = new HttpClient()

        let! ex =
            task {
                try
                    let! _ = client.GetStringAsync(frontend.Uri "/")
                    return null
                with e ->
                    return e
            }

        Assert.That(ex, Is.Not.Null)
    }
    |> sync

[<Test>]
let ``a client that aborts cancels the upstream request`` () =
    task {
        let started = Signal()
        let cancelled = Signal()

        use upstream =
            Kestrel.Plain(fun ctx ->
                task {
                    ctx.Response.ContentLength <- 10L
                    do! ctx.Response.WriteAsync "12345"
                    do! ctx.Response.Body.FlushAsync()
                    started.Set()

                    try
                        do! Task.Delay(Timeout.Infinite, ctx.RequestAborted)
                    with :? OperationCanceledException ->
                        cancelled.Set()
                })

        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")
        proxy.ErrorLog <- ListLogger()
        use frontend = front proxy
        use client = new HttpClient()
        use cts = new CancellationTokenSource()

        let! r =
            client.GetAsync(frontend.Uri "/", HttpCompletionOption.ResponseHeadersRead, cts.Token)

        do! started.Wait()
        cts.Cancel()
        r.Dispose()
        do! cancelled.Wait()
    }
    |> sync

[<Test>]
let ``SSE: the first event reaches the client before the upstream finishes`` () =
    task {
        let firstSeen = Signal()

        use upstream =
            Kestrel.Plain(fun ctx ->
                task {
                    ctx.Response.ContentType <- "text/event-stream"
                    do! ctx.Response.WriteAsync "data: one\n\n"
                    do! ctx.Response.Body.FlushAsync()
                    do! firstSeen.Wait()
                    do! ctx.Response.WriteAsync "data: two\n\n"
                })

        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))
        use client = new HttpClient()

        use! r =
            client.GetAsync(frontend.Uri "/events", HttpCompletionOption.ResponseHeadersRead)

        use! s = r.Content.ReadAsStreamAsync()
        use reader = new StreamReader(s)
        let! first = reader.ReadLineAsync() |> within 10.0
        Assert.That(first, Is.EqualTo "data: one")
        firstSeen.Set()
        let! rest = reader.ReadToEndAsync() |> within 10.0
        Assert.That(rest, Is.EqualTo "\ndata: two\n\n")
    }
    |> sync

[<Test>]
let ``Expect 100-continue works end to end (curl)`` () =
    task {
        use upstream = Kestrel.Plain echo
        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))

        let! code, out, err =
            run
                "curl"
                [
                    "-sS"
                    "-v"
                    "-H"
                    "Expect: 100-continue"
                    "--data-binary"
                    String('z', 5000)
                    (frontend.Uri "/upload").ToString()
                ]

        Assert.That(code, Is.EqualTo 0, err)
        Assert.That(err, Does.Contain "HTTP/1.1 100 Continue")
        Assert.That(lines out, Does.Contain "body 5000")
        Assert.That(fieldLines "expect" out, Is.EqualTo(box [ "expect: 100-continue" ]))
    }
    |> sync

[<Test>]
let ``HEAD, 204 and 304 carry no body through the proxy`` () =
    task {
        use upstream =
            Kestrel.Plain(fun ctx ->
                match ctx.Request.Path.Value with
                | "/204" ->
                    ctx.Response.StatusCode <- 204
                    Task.CompletedTask
                | "/304" ->
                    ctx.Response.StatusCode <- 304
                    ctx.Response.Headers.ETag <- "\"v1\""
                    Task.CompletedTask
                | _ ->
                    ctx.Response.ContentLength <- 5L

                    if HttpMethods.IsHead ctx.Request.Method then
                        Task.CompletedTask
                    else
                        ctx.Response.WriteAsync "hello")

        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))

        // Three requests on one connection: a body where there must be none would break the framing.
        let! reply =
            rawExchange
                frontend.Port
                ("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\n"
                 + "GET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")

        let statuses =
            reply.Split("\r\n")
            |> Array.filter (fun l -> l.StartsWith "HTTP/1.1")
            |> List.ofArray

        Assert.That(
            statuses,
            Is.EqualTo(
                box
                    [
                        "HTTP/1.1 200 OK"
                        "HTTP/1.1 204 No Content"
                        "HTTP/1.1 304 Not Modified"
                        "HTTP/1.1 200 OK"
                    ]
            )
        )

        Assert.That(reply, Does.Contain "Content-Length: 5")
        Assert.That(reply, Does.EndWith "\r\n\r\nhello")
    }
    |> sync

/// The most the managed heap grew above `baseline` while `work` ran (sampled by a timer every 5 ms).
let peakHeapDuring (work: unit -> Task) =
    task {
        GC.Collect()
        GC.WaitForPendingFinalizers()
        let baseline = GC.GetTotalMemory true
        let peak = ref baseline

        use _sampler =
            new Timer((fun _ -> peak.Value <- max peak.Value (GC.GetTotalMemory false)), null, 0, 5)

        do! work ()
        return max peak.Value (GC.GetTotalMemory false) - baseline
    }

/// A stream of `length` bytes made on the fly (nothing held).
type GeneratedStream(length: int64) =
    inherit Stream()
    let mutable position = 0L
    override _.CanRead = true
    override _.CanSeek = false
    override _.CanWrite = false
    override _.Length = length

    override _.Position
        with get () = position
        and set _ = raise (NotSupportedException())

    override _.Flush() = ()

    override _.Read(buffer: byte[], offset: int, count: int) =
        let n = int (min (int64 count) (length - position))
        Span<byte>(buffer, offset, n).Fill(byte 'y')
        position <- position + int64 n
        n

    override _.Seek(_, _) = raise (NotSupportedException())
    override _.SetLength _ = raise (NotSupportedException())
    override _.Write(_, _, _) = raise (NotSupportedException())

[<Test>]
let ``100 MB up and 100 MB down stream through the proxy with the heap bounded`` () =
    task {
        let size = 100L * 1024L * 1024L

        use upstream =
            Kestrel.Plain(fun ctx ->
                task {
                    if HttpMethods.IsPost ctx.Request.Method then
                        ctx.Features
                            .Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()
                            .MaxRequestBodySize <- Nullable()

                        let! total = countToEnd 65536 ctx.Request.Body
                        do! ctx.Response.WriteAsync(string total)
                    else
                        ctx.Response.ContentLength <- size
                        use source = new GeneratedStream(size)
                        do! source.CopyToAsync(ctx.Response.Body, 65536)
                })

        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))
        use client = new HttpClient()

        let! grew =
            peakHeapDuring (fun () ->
                task {
                    use content = new StreamContent(new GeneratedStream(size), 65536)
                    content.Headers.ContentLength <- size
                    use! up = client.PostAsync(frontend.Uri "/up", content)
                    let! counted = up.Content.ReadAsStringAsync()
                    Assert.That(counted, Is.EqualTo(string size))

                    use! down =
                        client.GetAsync(frontend.Uri "/down", HttpCompletionOption.ResponseHeadersRead)

                    use! s = down.Content.ReadAsStreamAsync()
                    let! total = countToEnd 65536 s
                    Assert.That(total, Is.EqualTo size)
                }
                :> Task)

        Assert.That(grew, Is.LessThan(64L * 1024L * 1024L), sprintf "the heap grew by %d bytes" grew)
    }
    |> sync

[<Test>]
let ``WebSocket echo through the proxy`` () =
    task {
        use upstream =
            new Web(
                (fun app ->
                    app.UseWebSockets() |> ignore

                    app.Run(fun ctx ->
                        task {
                            use! ws = ctx.WebSockets.AcceptWebSocketAsync()
                            let buffer = Array.zeroCreate<byte> 4096
                            let mutable go = true

                            while go do
                                let! r = ws.ReceiveAsync(ArraySegment buffer, CancellationToken.None)

                                if r.MessageType = WebSocketMessageType.Close then
                                    do!
                                        ws.CloseAsync(
                                            WebSocketCloseStatus.NormalClosure,
                                            "bye",
                                            CancellationToken.None
                                        )

                                    go <- false
                                else
                                    do!
                                        ws.SendAsync(
                                            ArraySegment(buffer, 0, r.Count),
                                            r.MessageType,
                                            r.EndOfMessage,
                                            CancellationToken.None
                                        )
                        }
                        :> Task)),
                false
            )

        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))
        use ws = new ClientWebSocket()

        do!
            ws
                .ConnectAsync(Uri(sprintf "ws://127.0.0.1:%d/ws" frontend.Port), CancellationToken.None)
                .WaitAsync(TimeSpan.FromSeconds 10.0)

        let buffer = Array.zeroCreate<byte> 4096

        for msg in [ "hello"; String('w', 3000) ] do
            do!
                ws.SendAsync(
                    ArraySegment(Encoding.UTF8.GetBytes msg),
                    WebSocketMessageType.Text,
                    true,
                    CancellationToken.None
                )

            let! r = ws.ReceiveAsync(ArraySegment buffer, CancellationToken.None) |> within 10.0
            Assert.That(Encoding.UTF8.GetString(buffer, 0, r.Count), Is.EqualTo msg)

        do!
            ws
                .CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None)
                .WaitAsync(TimeSpan.FromSeconds 10.0)

        Assert.That(ws.CloseStatus, Is.EqualTo(Nullable WebSocketCloseStatus.NormalClosure))
    }
    |> sync

[<Test>]
let ``an upstream that switches to another protocol than asked gives 502`` () =
    task {
        use upstream =
            scripted "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"

        let log = ListLogger()
        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")
        proxy.ErrorLog <- log
        use frontend = front proxy

        use c = new TcpClient()
        do! c.ConnectAsync(IPAddress.Loopback, frontend.Port)
        let s = c.GetStream()

        do!
            writeText
                s
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

        let! reply = readHead s |> within 10.0
        Assert.That(reply, Does.StartWith "HTTP/1.1 502")
        Assert.That(log.Has(LogLevel.Error, "h2c"), Is.True, sprintf "%A" log.Entries)
    }
    |> sync

[<Test>]
let ``a tunnel: what the client sends before its FIN reaches the upstream, which then sees the end`` () =
    task {
        let received = TaskCompletionSource<int>()

        use upstream =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
                    // Everything until the proxy shuts its sending side down, then an answer.
                    let! all = readToEnd s
                    received.TrySetResult all.Length |> ignore
                    do! writeText s (sprintf "got %d bytes" all.Length)
                })

        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))
        use c = new TcpClient()
        do! c.ConnectAsync(IPAddress.Loopback, frontend.Port)
        let s = c.GetStream()
        do! writeText s "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
        let! head = readHead s |> within 10.0
        Assert.That(head, Does.StartWith "HTTP/1.1 101")
        Assert.That(head.ToLowerInvariant(), Does.Contain "upgrade: echo")
        do! writeText s (String('p', 10000))
        c.Client.Shutdown SocketShutdown.Send
        let! got = received.Task |> within 10.0
        Assert.That(got, Is.EqualTo 10000, "every byte sent before the FIN reached the upstream")
    }
    |> sync

[<Test>]
let ``trailers: a chunked request's trailers reach the upstream`` () =
    task {
        let trailer = TaskCompletionSource<string>()

        use upstream =
            Kestrel.Plain(fun ctx ->
                task {
                    use ms = new MemoryStream()
                    do! ctx.Request.Body.CopyToAsync ms
                    trailer.TrySetResult(string (ctx.Request.GetTrailer "X-Checksum")) |> ignore
                    do! ctx.Response.WriteAsync "ok"
                })

        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))
        use tcp = new TcpClient()
        do! tcp.ConnectAsync(IPAddress.Loopback, frontend.Port)
        use conn = new ClientConn(tcp.GetStream())

        // A stream that cannot seek has no known length: the body goes chunked, so it can carry trailers.
        use content = new StreamContent(new GeneratedStream(9L))

        use req =
            (new HttpRequestMessage(HttpMethod.Post, frontend.Uri "/t", Content = content))
                .WithTrailers(fun () -> Headers.Of(struct ("X-Checksum", "abc123")))

        use! resp = conn.DoAsync req |> within 10.0
        let! body = resp.Content.ReadAsStringAsync()
        Assert.That(body, Is.EqualTo "ok")
        let! got = trailer.Task |> within 10.0
        Assert.That(got, Is.EqualTo "abc123")
    }
    |> sync

[<Test>]
let ``trailers: an upstream's response trailers reach an HTTP/2 client, announced`` () =
    task {
        use upstream =
            scripted (
                "HTTP/1.1 200 OK\r\nTrailer: X-Digest\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\r\nhello\r\n0\r\nX-Digest: d41d8\r\n\r\n"
            )

        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")

        use frontend = front2 proxy
        use client = new HttpClient()
        use req = http2Request HttpMethod.Get (frontend.Uri "/")

        req.Headers.TE.ParseAdd "trailers"
        use! r = client.SendAsync req
        let! body = r.Content.ReadAsStringAsync()
        Assert.That(r.Version, Is.EqualTo HttpVersion.Version20)
        Assert.That(body, Is.EqualTo "hello")
        Assert.That(String.Join(",", r.Headers.Trailer), Is.EqualTo "X-Digest")
        Assert.That(String.Join(",", r.TrailingHeaders.GetValues "X-Digest"), Is.EqualTo "d41d8")
    }
    |> sync

[<Test>]
let ``an HTTP/2 front forwards to an HTTP/1.1 upstream`` () =
    task {
        use upstream = Kestrel.Plain echo
        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")

        use frontend = front2 proxy
        use client = new HttpClient()
        use req = http2Request HttpMethod.Post (frontend.Uri "/h2?x=1")
        req.Content <- new StringContent("from h2")

        use! r = client.SendAsync req
        let! body = r.Content.ReadAsStringAsync()
        Assert.That(lines body, Does.Contain "target /h2?x=1")
        Assert.That(lines body, Does.Contain "body 7")
        Assert.That(fieldLines "host" body, Is.EqualTo(box [ sprintf "host: 127.0.0.1:%d" frontend.Port ]))
    }
    |> sync

[<Test>]
let ``ServerTiming adds the upstream phases; Debug logs the exchange`` () =
    task {
        use upstream = Kestrel.Plain echo
        let log = ListLogger()
        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")
        proxy.ServerTiming <- true
        proxy.Debug <- true
        proxy.ErrorLog <- log
        use frontend = front proxy
        use client = new HttpClient()
        use! r = client.GetAsync(frontend.Uri "/timed")
        let! _ = r.Content.ReadAsStringAsync()
        let timing = String.Join(", ", r.Headers.GetValues "Server-Timing")
        Assert.That(timing, Does.Contain "connect;dur=")
        Assert.That(timing, Does.Contain "wait;dur=")
        Assert.That(timing, Does.Contain "total;dur=")

        Assert.That(
            log.Entries
            |> List.exists (fun (l, m) -> l = LogLevel.Debug && m.Contains "GET /timed" && m.Contains "200"),
            Is.True,
            sprintf "%A" log.Entries
        )
    }
    |> sync

[<Test>]
let ``ModifyResponse changes the response; when it throws the client gets 502`` () =
    task {
        use upstream = Kestrel.Plain echo
        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")
        proxy.ErrorLog <- ListLogger()

        proxy.ModifyResponse <-
            fun r ->
                if r.RequestMessage.RequestUri.AbsolutePath = "/fail" then
                    failwith "no"

                r.Headers.Add("X-Modified", "1")
                ValueTask.CompletedTask

        use frontend = front proxy
        use client = new HttpClient()
        use! r = client.GetAsync(frontend.Uri "/ok")
        Assert.That(String.Join(",", r.Headers.GetValues "X-Modified"), Is.EqualTo "1")
        let! status, _ = get client (frontend.Uri "/fail")
        Assert.That(status, Is.EqualTo 502)
    }
    |> sync

/// The repository's root (where HttpUtil.sln is), found from the test assembly's folder.
[<Test>]
let ``the README's ReverseProxy example is the compiled examples/SingleHostProxy, and it prints the backend's text``
    ()
    =
    task {
        let root = repositoryRoot ()
        // bin/<Configuration>/net10.0: the example is built in the same configuration as the tests.
        let configuration =
            DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent.Name

        let dll =
            Path.Combine(root, "examples", "SingleHostProxy", "bin", configuration, "net10.0", "SingleHostProxy.dll")

        let! code, out, err = run "dotnet" [ dll ] |> within 60.0
        Assert.That(code, Is.EqualTo 0, err)
        Assert.That(out.Trim(), Is.EqualTo "this call was relayed by the reverse proxy")

        let source =
            File
                .ReadAllText(Path.Combine(root, "examples", "SingleHostProxy", "Program.cs"))
                .Replace("\r\n", "\n")
                .Trim()

        let readme = File.ReadAllText(Path.Combine(root, "README.md")).Replace("\r\n", "\n")
        Assert.That(readme, Does.Contain source, "the README quotes examples/SingleHostProxy/Program.cs as it is")
    }
    |> sync

[<Test>]
let ``MaxRequestBodySize: a larger Content-Length gets 413 before the upstream is asked; a chunked body that grows past it gets 413``
    ()
    =
    task {
        let upstream, hits = countingEcho ()
        use upstream = upstream

        let proxy = ReverseProxy.NewSingleHost(upstream.Uri "/")
        proxy.MaxRequestBodySize <- Nullable 1000L
        proxy.ErrorLog <- ListLogger()
        use frontend = front proxy

        let! declared =
            rawExchange
                frontend.Port
                ("POST /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n"
                 + String('d', 5000))

        Assert.That(declared, Does.StartWith "HTTP/1.1 413")
        Assert.That(hits.Value, Is.EqualTo 0, "nothing reached the upstream")

        let chunk = String('c', 600)

        let! grown =
            rawExchange
                frontend.Port
                (sprintf
                    "POST /chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n%s\r\n258\r\n%s\r\n0\r\n\r\n"
                    chunk
                    chunk)

        Assert.That(grown, Does.StartWith "HTTP/1.1 413")

        let! small =
            rawExchange
                frontend.Port
                "POST /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 10\r\n\r\n0123456789"

        Assert.That(small, Does.StartWith "HTTP/1.1 200")
        Assert.That(lines small, Does.Contain "body 10")
    }
    |> sync
