/// The httputil command, run as a process the way a user runs it: trace, dump, proxy, demo, parse, and every
/// failure a user can cause (one line on standard error, its own exit code).
module HttpUtil.Tests.CliTests

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Sockets
open System.Text
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open NUnit.Framework
open Microsoft.AspNetCore.Http
open HttpUtil.Cli
open HttpUtil.Tests.Support

let private cliDll () =
    Path.Combine(repositoryRoot (), "src", "HttpUtil.Cli", "bin", configuration (), "net10.0", "HttpUtil.Cli.dll")

/// Runs `httputil args` to its end (at most 60 s).
let private httputil (args: string list) =
    runFor 60.0 [] None "dotnet" (cliDll () :: args)

/// Runs `httputil args` and returns its standard output as exact text (CRLF kept).
let private httputilRaw (args: string list) =
    task {
        let psi = ProcessStartInfo("dotnet")

        for a in cliDll () :: args do
            psi.ArgumentList.Add a

        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        psi.StandardOutputEncoding <- Encoding.Latin1
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEndAsync()
        let err = p.StandardError.ReadToEndAsync()
        use cts = new CancellationTokenSource(TimeSpan.FromSeconds 60.0)

        try
            do! p.WaitForExitAsync(cts.Token)
        with :? OperationCanceledException ->
            p.Kill true
            failwith "httputil did not exit within 60 s"

        let! o = out
        let! e = err
        return p.ExitCode, o, e
    }

let private phasesOf (o: JsonElement) =
    [
        for p in o.GetProperty("phases").EnumerateArray() ->
            p.GetProperty("name").GetString(),
            p.GetProperty("start_ms").GetDouble(),
            p.GetProperty("ms").GetDouble(),
            p.GetProperty("happened").GetBoolean()
    ]

[<Test>]
let ``trace --json -n 2: the phases are in order, never negative, add up to the total, and the second request reuses the connection``
    ()
    =
    task {
        use k = Kestrel.Plain(fun ctx -> ctx.Response.WriteAsync(String('x', 1024)))

        let! code, out, err =
            httputil [ "trace"; "--json"; "-n"; "2"; (k.Uri "/t").ToString() ]

        Assert.That(code, Is.EqualTo 0, err)

        let objects =
            out.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)

        Assert.That(objects.Length, Is.EqualTo 2, out)

        for o in objects do
            Assert.That(o.GetProperty("status").GetInt32(), Is.EqualTo 200)
            Assert.That(o.GetProperty("body_bytes").GetInt64(), Is.EqualTo 1024L)
            let phases = phasesOf o
            let total = o.GetProperty("total_ms").GetDouble()

            Assert.That(
                phases |> List.map (fun (n, _, _, _) -> n),
                Is.EqualTo(
                    box
                        [
                            "dns_lookup"
                            "tcp_connection"
                            "tls_handshake"
                            "request_sent"
                            "server_processing"
                            "content_transfer"
                        ]
                )
            )

            let mutable at = 0.0

            for (name, start, ms, _) in phases do
                Assert.That(ms, Is.GreaterThanOrEqualTo 0.0, name)
                // Back to back: each starts where the one before ended (each figure is rounded to 0.001 ms).
                Assert.That(start, Is.EqualTo(at).Within 0.01, name)
                at <- at + ms

            Assert.That(at, Is.EqualTo(total).Within 0.01, "the phases add up to the total")
            Assert.That(total, Is.GreaterThan 0.0)

        let reused (o: JsonElement) =
            o.GetProperty("connection").GetProperty("reused").GetBoolean()

        let connected (o: JsonElement) =
            phasesOf o
            |> List.exists (fun (n, _, _, happened) -> n = "tcp_connection" && happened)

        Assert.That(reused objects[0], Is.False)
        Assert.That(connected objects[0], Is.True)
        Assert.That(reused objects[1], Is.True, "the second request went on the first one's connection")
        Assert.That(connected objects[1], Is.False)
    }
    |> sync

[<Test>]
let ``trace -k against https reports the TLS handshake phase and the connection's TLS facts`` () =
    task {
        use cert = makeCertificate ()
        use k = Kestrel.Tls((fun ctx -> ctx.Response.WriteAsync "secure"), cert, false)
        let! code, out, err = httputil [ "trace"; "--json"; "-k"; (k.Uri "/s").ToString() ]
        Assert.That(code, Is.EqualTo 0, err)
        let o = JsonDocument.Parse(out).RootElement

        Assert.That(
            phasesOf o
            |> List.exists (fun (n, _, ms, happened) -> n = "tls_handshake" && happened && ms > 0.0),
            Is.True,
            out
        )

        let tls = o.GetProperty("connection").GetProperty("tls")
        Assert.That(tls.GetProperty("version").GetString(), Does.StartWith "Tls")
        Assert.That(tls.GetProperty("alpn").GetString(), Is.EqualTo "http/1.1")
        Assert.That(tls.GetProperty("certificate_subject").GetString(), Is.EqualTo "CN=localhost")

        // Without -k the self-signed certificate is refused: one line, exit code 7.
        let! refused, _, err2 = httputil [ "trace"; (k.Uri "/s").ToString() ]
        Assert.That(refused, Is.EqualTo(int ExitCode.TlsFailure), err2)
    }
    |> sync

[<Test>]
let ``trace draws the waterfall, the connection's facts and the response head`` () =
    task {
        use k =
            Kestrel.Plain(fun ctx ->
                ctx.Response.Headers["X-Served-By"] <- "kestrel-in-test"
                ctx.Response.WriteAsync "traced")

        let! code, out, err = httputil [ "trace"; (k.Uri "/t").ToString() ]
        Assert.That(code, Is.EqualTo 0, err)

        for phase in
            [
                "DNS lookup"
                "TCP connection"
                "TLS handshake"
                "Request sent"
                "Server processing"
                "Content transfer"
                "Total"
            ] do
            Assert.That(out, Does.Contain phase)

        Assert.That(out, Does.Contain(sprintf "Remote address  127.0.0.1:%d" k.Port))
        Assert.That(out, Does.Contain "Connection      new")
        Assert.That(out, Does.Contain "HTTP/1.1 200 OK")
        Assert.That(out, Does.Contain "X-Served-By: kestrel-in-test")
        Assert.That(out, Does.Contain "Body            6 bytes")
    }
    |> sync

[<Test>]
let ``demo exits 0 and prints every section of the tour`` () =
    task {
        let! code, out, err = httputil [ "demo" ]
        Assert.That(code, Is.EqualTo 0, out + err)

        for section in DemoCommand.Sections do
            Assert.That(out, Does.Contain section)

        Assert.That(out, Does.Contain "wrote 3 requests back to back before reading any answer; Pending = 3")
        Assert.That(out, Does.Contain "the stream ended after 3 events")
        Assert.That(out, Does.Contain "sent 1048576 bytes chunked; the upstream says: received 1048576 bytes")
        Assert.That(out, Does.Contain "every step behaved as expected")
    }
    |> sync

[<Test>]
let ``proxy serves until SIGINT, then lets the request in flight finish and exits 0`` () =
    task {
        let upstream, arrived, release =
            holdingKestrel "/slow" "finished after the stop signal" "quick"

        use upstream = upstream

        // Through `env --default-signal=INT`: a test runner started as a background job (a non-interactive shell's
        // `cmd &`) passes SIGINT on ignored, and an ignored signal stays ignored across exec.
        use proxy =
            new ChildProcess(
                "env",
                [
                    "--default-signal=INT"
                    "dotnet"
                    cliDll ()
                    "proxy"
                    (upstream.Uri "/").ToString()
                    "--listen"
                    "127.0.0.1:0"
                    "--access-log"
                ],
                [],
                None
            )

        let! started = proxy.WaitForLine((fun l -> l.Contains "listening on"), 30.0)
        let url = (started.Split(' ')[4]).TrimEnd(',').TrimEnd('/')

        let! code, quick, _ = runFor 30.0 [] None "curl" [ "-s"; url + "/quick" ]
        Assert.That((code, quick.Trim()), Is.EqualTo((0, "quick")), proxy.Output + proxy.Error)

        use slow = new ChildProcess("curl", [ "-s"; url + "/slow" ], [], None)
        do! arrived.Wait()
        let! killed, _, killErr = runFor 10.0 [] None "kill" [ "-INT"; string proxy.Id ]
        Assert.That(killed, Is.EqualTo 0, killErr)
        let! _ = proxy.WaitForLine((fun l -> l.Contains "stopping"), 30.0)
        release.Set()

        let! slowCode = slow.WaitForExit 30.0
        Assert.That(slowCode, Is.EqualTo 0)

        Assert.That(
            slow.Output.Trim(),
            Is.EqualTo "finished after the stop signal",
            "the request in flight was not lost"
        )

        let! exit = proxy.WaitForExit 30.0
        Assert.That(exit, Is.EqualTo 0, proxy.Output + proxy.Error)
        Assert.That(proxy.Output, Does.Contain "httputil proxy: stopped")
        Assert.That(proxy.Output, Does.Contain "\"GET /quick HTTP/1.1\" 200", "--access-log logs each request")
    }
    |> sync

[<Test>]
let ``dump writes the request exactly as the server read it, then the response exactly as sent`` () =
    task {
        let response =
            "HTTP/1.1 201 Created\r\nX-Echo:  spaced  \r\ncontent-length: 5\r\n\r\nhello"

        let server, seen = recordingServer 7 response // the body is "payload"
        use server = server

        let! code, out, err =
            httputilRaw
                [
                    "dump"
                    "-X"
                    "PUT"
                    "-H"
                    "X-One: 1"
                    "-H"
                    "Content-Type: text/plain"
                    "-d"
                    "payload"
                    "--body"
                    (server.Uri "/items/7?x=1").ToString()
                ]

        Assert.That(code, Is.EqualTo 0, err)
        let! request = seen |> within 10.0
        Assert.That(out, Does.StartWith request, "the request as dumped is the request as received")

        Assert.That(
            out.Substring(request.Length),
            Is.EqualTo response,
            "the response as dumped is the response as sent"
        )

        Assert.That(request, Does.StartWith "PUT /items/7?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    }
    |> sync

[<Test>]
let ``trace --via sends the request to the forward proxy in absolute form, with -H fields and a -d body`` () =
    task {
        let forwardProxy, seen =
            recordingServer 4 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" // the body is "a=b&"

        use forwardProxy = forwardProxy

        let! code, out, err =
            httputil
                [
                    "trace"
                    "--json"
                    "--via"
                    (forwardProxy.Uri "/").ToString()
                    "-H"
                    "X-Asked: yes"
                    "-d"
                    "a=b&"
                    "http://origin.example/path?q=1"
                ]

        Assert.That(code, Is.EqualTo 0, err)
        let! request = seen |> within 10.0
        Assert.That(request, Does.StartWith "POST http://origin.example/path?q=1 HTTP/1.1\r\nHost: origin.example\r\n")
        Assert.That(request, Does.Contain "X-Asked: yes\r\n")
        Assert.That(request, Does.Contain "Content-Type: application/x-www-form-urlencoded\r\n")
        Assert.That(request, Does.EndWith "\r\n\r\na=b&")
        let o = JsonDocument.Parse(out).RootElement

        Assert.That(
            o.GetProperty("connection").GetProperty("remote_address").GetString(),
            Is.EqualTo(sprintf "127.0.0.1:%d" forwardProxy.Port)
        )
    }
    |> sync

/// A server that answers every connection with bytes that are not HTTP.
let private garbageServer () =
    new ScriptedServer(fun _ s ->
        task {
            let! _ = readHead s
            do! writeText s "HELLO THERE\r\n\r\n"
        })

[<Test>]
let ``every failure a user can cause is one line on standard error with its own exit code`` () =
    task {
        use plain = Kestrel.Plain(fun ctx -> ctx.Response.WriteAsync "plain")
        use garbage = garbageServer ()
        // Accepts and never answers.
        use silent = new TcpListener(IPAddress.Loopback, 0)
        silent.Start()
        let silentPort = (silent.LocalEndpoint :?> IPEndPoint).Port
        // Holds a port so that proxy cannot listen on it.
        use busy = new TcpListener(IPAddress.Loopback, 0)
        busy.Start()
        let busyPort = (busy.LocalEndpoint :?> IPEndPoint).Port
        let refused = sprintf "http://127.0.0.1:%d/" (freePort ())

        let cases =
            [
                [ "trace"; "not a url" ], ExitCode.BadUrl
                [ "trace"; "--no-such-flag"; "http://127.0.0.1/" ], ExitCode.Usage
                [ "trace"; "-n"; "0"; refused ], ExitCode.Usage
                [ "trace"; "-d"; "@/no/such/file"; refused ], ExitCode.BadFile
                [ "trace"; "-m"; "20"; "http://no-such-host.invalid/" ], ExitCode.DnsFailure
                [ "trace"; refused ], ExitCode.ConnectionRefused
                [ "trace"; sprintf "https://127.0.0.1:%d/" plain.Port ], ExitCode.TlsFailure
                [ "trace"; "-m"; "1"; sprintf "http://127.0.0.1:%d/" silentPort ], ExitCode.Timeout
                [ "trace"; (garbage.Uri "/").ToString() ], ExitCode.ProtocolError
                [ "dump"; refused ], ExitCode.ConnectionRefused
                [ "proxy"; "ftp://example.test/" ], ExitCode.BadUrl
                [ "proxy"; (plain.Uri "/").ToString(); "--listen"; "nowhere" ], ExitCode.Usage
                [
                    "proxy"
                    (plain.Uri "/").ToString()
                    "--listen"
                    sprintf "127.0.0.1:%d" busyPort
                ],
                ExitCode.AddressInUse
                [ "parse"; "/no/such/file" ], ExitCode.BadFile
            ]

        for args, expected in cases do
            let! code, out, err = httputil args
            let what = String.Join(" ", args)
            let lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            Assert.That(code, Is.EqualTo(int expected), sprintf "%s: %s%s" what out err)
            Assert.That(lines.Length, Is.EqualTo 1, sprintf "%s: one line on standard error, got: %s" what err)
            Assert.That(lines[0], Does.StartWith "httputil: ", what)
            Assert.That(err, Does.Not.Contain "   at ", sprintf "%s: no stack trace" what)
    }
    |> sync

[<Test>]
let ``--help lists the commands and the exit codes`` () =
    task {
        let! code, out, err = httputil [ "--help" ]
        Assert.That(code, Is.EqualTo 0, err)

        for c in [ "trace"; "dump"; "proxy"; "demo"; "parse" ] do
            Assert.That(out, Does.Contain c)

        Assert.That(out.Replace("\n", " "), Does.Contain "Exit codes: 0 ok")
        Assert.That(out.Replace("\n", " "), Does.Contain "11 listen address in use")
    }
    |> sync

[<Test>]
let ``parse prints the head, the framing and a chunked body with its trailers; a bad head exits 1 with its status hint``
    ()
    =
    use out = new StringWriter()
    let sample = Text.Encoding.Latin1.GetBytes ParseCommand.SampleRequest

    let code =
        ParseCommand.Run(out, sample, HttpUtil.Core.ParserSettings.Default, false, "GET")

    let text = out.ToString()
    Assert.That(code, Is.EqualTo 0, text)
    Assert.That(text, Does.Contain "target       /api/orders?dry-run=true (Origin form)")
    Assert.That(text, Does.Contain "body         chunked")
    Assert.That(text, Does.Contain "body data    13 bytes: {\"sku\":\"A-1\"}")
    Assert.That(text, Does.Contain "  X-Checksum: 9f2c")

    use bad = new StringWriter()

    let noHostLine =
        Text.Encoding.Latin1.GetBytes("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n")

    let code =
        ParseCommand.Run(bad, noHostLine, HttpUtil.Core.ParserSettings.Default, false, "GET")

    Assert.That(code, Is.EqualTo 1)
    Assert.That(bad.ToString(), Does.Contain("WhitespaceBeforeColon at byte 19").And.Contain("(answer 400)"))
