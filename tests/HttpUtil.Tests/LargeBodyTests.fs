/// Large bodies read with large buffers: such reads go straight from the socket into the caller's
/// buffer once the connection's reader holds nothing (Body.passThrough). Every byte must arrive in
/// order, the next response on the connection must start exactly where the body ended, and a body
/// cut short must still be reported as one.
module HttpUtil.Tests.LargeBodyTests

open System
open System.IO
open System.Net.Http
open System.Net.Sockets
open System.Threading.Tasks
open NUnit.Framework
open HttpUtil
open HttpUtil.Core
open HttpUtil.Tests.Support

/// The byte at `i` of every test body: a pattern that shows a lost, repeated or moved byte.
let private patternAt (i: int) = byte ((i * 7 + i / 251) % 256)

let private pattern (length: int) = Array.init length patternAt

/// Checks that `got` is `expected`, naming the first byte that differs.
let private assertSameBytes (expected: byte[]) (got: byte[]) =
    let n = min expected.Length got.Length
    let mutable i = 0

    while i < n && expected[i] = got[i] do
        i <- i + 1

    Assert.That(got.Length, Is.EqualTo expected.Length, "body length")
    Assert.That(i, Is.EqualTo n, "the first byte that differs")

/// Writes `body` in pieces of `piece` bytes, flushing each, so reads meet it part by part.
let private writeInPieces (s: NetworkStream) (body: byte[]) (piece: int) =
    task {
        let mutable at = 0

        while at < body.Length do
            let n = min piece (body.Length - at)
            do! s.WriteAsync(body, at, n)
            do! s.FlushAsync()
            at <- at + n
    }

/// Reads `stream` to its end with a buffer of `size` bytes.
let private readAll (stream: Stream) (size: int) =
    task {
        let buffer = Array.zeroCreate<byte> size
        use into = new MemoryStream()
        let mutable n = -1

        while n <> 0 do
            let! got = stream.ReadAsync(buffer.AsMemory())
            n <- got
            into.Write(buffer, 0, n)

        return into.ToArray()
    }

[<Test>]
let ``a 1 MiB Content-Length body read with 64 KiB buffers arrives whole, and the connection carries the next exchange``
    ()
    =
    task {
        let body = pattern (1024 * 1024)

        use server =
            new ScriptedServer(fun _ s ->
                task {
                    for _ in 1..2 do
                        let! _ = readHead s
                        do! writeText s (sprintf "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" body.Length)
                        do! writeInPieces s body 10_000
                })

        use transport = new Transport()
        use client = new HttpClient(transport)

        for _ in 1..2 do
            use! response =
                client.GetAsync(server.Uri "/", HttpCompletionOption.ResponseHeadersRead)

            use! stream = response.Content.ReadAsStreamAsync()
            let! got = readAll stream (64 * 1024)
            assertSameBytes body got

        Assert.That(server.Connections, Is.EqualTo 1, "both exchanges on one connection")
    }
    |> sync

[<Test>]
let ``a body that runs until the connection closes, read with large buffers, arrives whole`` () =
    task {
        let body = pattern (300 * 1024)

        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                    do! writeInPieces s body 7_000
                    s.Socket.Shutdown SocketShutdown.Send
                })

        use client = new HttpClient(new Transport())

        use! response =
            client.GetAsync(server.Uri "/", HttpCompletionOption.ResponseHeadersRead)

        use! stream = response.Content.ReadAsStreamAsync()
        let! got = readAll stream (32 * 1024)
        assertSameBytes body got
    }
    |> sync

[<Test>]
let ``a Content-Length body cut short is reported as cut short when read with large buffers`` () =
    task {
        use server =
            new ScriptedServer(fun _ s ->
                task {
                    let! _ = readHead s
                    do! writeText s "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n"
                    do! writeInPieces s (pattern 120_000) 8_000
                    s.Socket.Shutdown SocketShutdown.Send
                })

        use client = new HttpClient(new Transport())

        use! response =
            client.GetAsync(server.Uri "/", HttpCompletionOption.ResponseHeadersRead)

        use! stream = response.Content.ReadAsStreamAsync()

        let ex =
            Assert.ThrowsAsync<MalformedMessageException>(fun () -> readAll stream (64 * 1024) :> Task)

        Assert.That(ex.Kind, Is.EqualTo ErrorKind.UnexpectedEnd)
        Assert.That(ex.Message, Does.Contain "120000")
    }
    |> sync
