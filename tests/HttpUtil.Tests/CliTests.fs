/// The httputil command's demo and trace, run in process.
module HttpUtil.Tests.CliTests

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open NUnit.Framework
open Microsoft.AspNetCore.Http
open HttpUtil.Cli
open HttpUtil.Tests.Support

[<Test>]
let ``demo pipelines three requests and ends with a refused fourth write`` () =
    task {
        use out = new StringWriter()
        let! code = DemoCommand.RunAsync(out, CancellationToken.None)
        let text = out.ToString()
        Assert.That(code, Is.EqualTo 0, text)
        Assert.That(text, Does.Contain "wrote 3 requests back to back (pipelined); Pending = 3")
        Assert.That(text, Does.Contain "trailer: X-Checksum: demo")
        Assert.That(text, Does.Contain "last on the connection: True; Pending = 0")
        Assert.That(text, Does.Contain "a fourth write is refused: PersistEofException")
    }
    |> sync

[<Test>]
let ``trace prints every hook of a request in order, and a failure exits 1`` () =
    task {
        use k = Kestrel.Plain(fun ctx -> ctx.Response.WriteAsync "traced")
        use out = new StringWriter()

        let! code =
            TraceCommand.RunAsync(out, k.Uri "/t", "GET", false, CancellationToken.None)

        let text = out.ToString()
        Assert.That(code, Is.EqualTo 0, text)

        let order =
            [
                "GetConn"
                "ConnectStart"
                "ConnectDone"
                "GotConn"
                "WroteHeaders"
                "WroteRequest"
                "GotFirstResponseByte"
                "PutIdleConn"
                "body read (6 bytes)"
            ]
            |> List.map (fun s -> text.IndexOf(s, StringComparison.Ordinal))

        Assert.That(order |> List.forall (fun i -> i >= 0), Is.True, text)
        Assert.That(order, Is.Ordered, text)
        Assert.That(text.TrimEnd(), Does.EndWith "HTTP/1.1 200 OK")

        let l = new Net.Sockets.TcpListener(Net.IPAddress.Loopback, 0)
        l.Start()
        let port = (l.LocalEndpoint :?> Net.IPEndPoint).Port
        l.Stop()
        use out2 = new StringWriter()

        let! failed =
            TraceCommand.RunAsync(out2, Uri(sprintf "http://127.0.0.1:%d/" port), null, false, CancellationToken.None)

        Assert.That(failed, Is.EqualTo 1)
        Assert.That(out2.ToString(), Does.Contain("ConnectDone").And.Contain("failed: could not connect"))
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
