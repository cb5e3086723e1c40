/// Shared helpers: an in-memory duplex stream, a Kestrel server on 127.0.0.1, socket pairs, curl.
module HttpUtil.Tests.Support

open System
open System.Diagnostics
open System.IO
open System.IO.Pipelines
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging

/// One end of an in-memory duplex connection: reads what the other end writes.
type DuplexStream(input: PipeReader, output: PipeWriter) =
    inherit Stream()
    let inS = input.AsStream()
    let outS = output.AsStream()
    override _.CanRead = true
    override _.CanWrite = true
    override _.CanSeek = false
    override _.Length = raise (NotSupportedException())

    override _.Position
        with get () = raise (NotSupportedException())
        and set _ = raise (NotSupportedException())

    override _.Read(b, o, c) = inS.Read(b, o, c)
    override _.ReadAsync(m: Memory<byte>, ct) = inS.ReadAsync(m, ct)
    override _.ReadAsync(b: byte[], o, c, ct) = inS.ReadAsync(b, o, c, ct)
    override _.Write(b, o, c) = outS.Write(b, o, c)
    override _.WriteAsync(m: ReadOnlyMemory<byte>, ct) = outS.WriteAsync(m, ct)
    override _.WriteAsync(b: byte[], o, c, ct) = outS.WriteAsync(b, o, c, ct)
    override _.Flush() = outS.Flush()
    override _.FlushAsync(ct) = outS.FlushAsync(ct)
    override _.Seek(_, _) = raise (NotSupportedException())
    override _.SetLength _ = raise (NotSupportedException())

    override _.Dispose(disposing) =
        output.Complete()
        input.Complete()
        base.Dispose(disposing)

/// Two connected in-memory ends.
let duplexPair () =
    let a = Pipe()
    let b = Pipe()
    new DuplexStream(b.Reader, a.Writer), new DuplexStream(a.Reader, b.Writer)

let latin1 (s: string) = Encoding.Latin1.GetBytes s
let text (b: byte[]) = Encoding.Latin1.GetString b

/// Writes `bytes` to `s` and flushes.
let writeBytes (s: Stream) (bytes: byte[]) =
    task {
        do! s.WriteAsync(bytes, 0, bytes.Length)
        do! s.FlushAsync()
    }

/// Writes `str` as Latin-1 to `s` and flushes.
let writeText (s: Stream) (str: string) = writeBytes s (latin1 str)

/// Reads everything from `s` until the peer closes it.
let readToEnd (s: Stream) =
    task {
        use ms = new MemoryStream()
        do! s.CopyToAsync(ms)
        return ms.ToArray()
    }

/// Reads `s` to its end in reads of up to `size` bytes, keeping nothing; the number of bytes read.
let countToEnd (size: int) (s: Stream) =
    task {
        let buffer = Array.zeroCreate<byte> size
        let mutable total = 0L
        let mutable n = 1

        while n > 0 do
            let! got = s.ReadAsync(buffer, 0, buffer.Length)
            n <- got
            total <- total + int64 got

        return total
    }

/// Times a test-side await out, so a hang fails the test instead of the run.
let within (seconds: float) (t: Task<'T>) =
    t.WaitAsync(TimeSpan.FromSeconds seconds)

/// How long any one I/O test may run before it fails as hung.
let testTimeout = TimeSpan.FromSeconds 60.0

/// Runs an I/O test's task to its end, failing it (instead of hanging the run) after `testTimeout`.
let sync (t: Task) =
    try
        t.WaitAsync(testTimeout).GetAwaiter().GetResult()
    with :? TimeoutException ->
        raise (TimeoutException(sprintf "the test did not finish within %.0f s" testTimeout.TotalSeconds))

/// A signal a test awaits instead of sleeping: `Set` completes it (once), `Wait` awaits it with a
/// timeout so a signal that never comes fails the test.
type Signal() =
    let tcs = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    member _.Set() = tcs.TrySetResult() |> ignore
    member _.IsSet = tcs.Task.IsCompleted
    member _.Task: Task = tcs.Task

    member _.Wait() =
        tcs.Task.WaitAsync(TimeSpan.FromSeconds 30.0)

/// A countdown that is set when `Hit` has been called `n` times.
type Countdown(n: int) =
    let signal = Signal()
    let mutable left = n

    member _.Hit() =
        if Interlocked.Decrement(&left) = 0 then
            signal.Set()

    member _.Wait() = signal.Wait()

/// A clock the test moves by hand: timestamps advance only with `Advance`, and timers due by then
/// fire on the caller's thread, in order.
type ManualTime() =
    inherit TimeProvider()
    let gate = obj ()
    let mutable now = 0L
    let timers = ResizeArray<ManualTimer>()

    member internal _.Now = now
    member internal _.Gate = gate
    member internal _.Timers = timers

    override _.TimestampFrequency = TimeSpan.TicksPerSecond
    override _.GetTimestamp() = lock gate (fun () -> now)

    override _.GetUtcNow() =
        DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(lock gate (fun () -> now))

    override this.CreateTimer(callback, state, dueTime, period) =
        let t = new ManualTimer(this, callback, state)
        (t :> ITimer).Change(dueTime, period) |> ignore
        lock gate (fun () -> timers.Add t)
        t

    /// Moves the clock on by `by`, firing every timer that falls due on the way.
    member this.Advance(by: TimeSpan) =
        let target = lock gate (fun () -> now + by.Ticks)
        let mutable go = true

        while go do
            let next =
                lock gate (fun () ->
                    timers
                    |> Seq.filter (fun t -> t.Due <= target)
                    |> Seq.sortBy (fun t -> t.Due)
                    |> Seq.tryHead)

            match next with
            | Some t ->
                lock gate (fun () -> now <- max now t.Due)
                t.Fire()
            | None -> go <- false

        lock gate (fun () -> now <- target)

and ManualTimer(owner: ManualTime, callback: TimerCallback, state: obj) =
    let mutable due = Int64.MaxValue
    let mutable period = 0L

    member _.Due = due

    member _.Fire() =
        due <- (if period > 0L then due + period else Int64.MaxValue)
        callback.Invoke state

    interface ITimer with
        member _.Change(dueTime, p) =
            lock owner.Gate (fun () ->
                due <-
                    (if dueTime = Timeout.InfiniteTimeSpan then
                         Int64.MaxValue
                     else
                         owner.Now + dueTime.Ticks)

                period <- (if p = Timeout.InfiniteTimeSpan then 0L else p.Ticks))

            true

        member this.Dispose() =
            lock owner.Gate (fun () -> owner.Timers.Remove this |> ignore)

        member this.DisposeAsync() =
            (this :> IDisposable).Dispose()
            ValueTask.CompletedTask

/// A TCP server on 127.0.0.1 that runs `script` for each connection it accepts (with the
/// connection's index). A script that fails closes its connection, and the failure surfaces:
/// `Dispose` throws it, so a broken script fails the test instead of hiding.
type ScriptedServer(script: int -> NetworkStream -> Task) =
    let listener = new TcpListener(IPAddress.Loopback, 0)
    do listener.Start()
    let count = ref 0
    let errors = System.Collections.Concurrent.ConcurrentQueue<exn>()
    let running = System.Collections.Concurrent.ConcurrentBag<Task>()

    do
        task {
            try
                while true do
                    let! c = listener.AcceptTcpClientAsync()
                    let i = Interlocked.Increment(&count.contents) - 1

                    running.Add(
                        task {
                            use c = c

                            try
                                do! script i (c.GetStream())
                            with
                            | :? IOException
                            | :? SocketException
                            | :? ObjectDisposedException -> () // the client went away: part of many scripts
                            | ex -> errors.Enqueue ex
                        }
                    )
            with _ ->
                ()
        }
        |> ignore

    member _.Uri(path: string) =
        Uri(sprintf "http://127.0.0.1:%d%s" (listener.LocalEndpoint :?> IPEndPoint).Port path)

    member _.Port = (listener.LocalEndpoint :?> IPEndPoint).Port
    member _.Connections = count.Value
    member _.Errors = List.ofSeq errors

    interface IDisposable with
        member _.Dispose() =
            listener.Stop()

            if not errors.IsEmpty then
                raise (AggregateException("the scripted server's script failed", errors))

/// Reads one head (up to and including the empty line) from `s`; empty when the peer closed first.
let readHead (s: Stream) =
    task {
        let buf = ResizeArray<byte>()
        let one = Array.zeroCreate<byte> 1
        let mutable go = true

        while go do
            let! n = s.ReadAsync(one, 0, 1)

            if n = 0 then
                go <- false
            else
                buf.Add one[0]
                let c = buf.Count

                if
                    c >= 4
                    && buf[c - 4] = 13uy
                    && buf[c - 3] = 10uy
                    && buf[c - 2] = 13uy
                    && buf[c - 1] = 10uy
                then
                    go <- false

        return text (buf.ToArray())
    }

/// A connected pair of loopback sockets: (client stream, server stream).
let socketPair () =
    task {
        use listener = new TcpListener(IPAddress.Loopback, 0)
        listener.Start()
        let client = new TcpClient()

        let connect =
            client.ConnectAsync(IPAddress.Loopback, (listener.LocalEndpoint :?> IPEndPoint).Port)

        let! server = listener.AcceptTcpClientAsync()
        do! connect
        client.NoDelay <- true
        server.NoDelay <- true
        return client, server
    }

/// A self-signed certificate for localhost and 127.0.0.1, made in the test.
let makeCertificate () =
    use rsa = System.Security.Cryptography.RSA.Create 2048

    let req =
        System.Security.Cryptography.X509Certificates.CertificateRequest(
            "CN=localhost",
            rsa,
            System.Security.Cryptography.HashAlgorithmName.SHA256,
            System.Security.Cryptography.RSASignaturePadding.Pkcs1
        )

    let san =
        System.Security.Cryptography.X509Certificates.SubjectAlternativeNameBuilder()

    san.AddDnsName "localhost"
    san.AddIpAddress IPAddress.Loopback
    req.CertificateExtensions.Add(san.Build())

    use cert =
        req.CreateSelfSigned(DateTimeOffset.Now.AddDays -1.0, DateTimeOffset.Now.AddDays 1.0)

    System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12(
        cert.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pfx),
        null
    )

/// The port a started app listens on (the OS chose it).
let listeningPort (app: WebApplication) =
    let addresses =
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>().Addresses

    Uri(Seq.head addresses).Port

/// A Kestrel server on 127.0.0.1 with a port chosen by the OS, serving `handler` (over TLS with
/// `certificate`, HTTP/1.1 only, when one is given).
type Kestrel
    (
        handler: HttpContext -> Task,
        certificate: System.Security.Cryptography.X509Certificates.X509Certificate2 option,
        requireClientCertificate: bool
    ) =
    let app =
        let builder = WebApplication.CreateSlimBuilder()
        builder.Logging.ClearProviders() |> ignore

        builder.WebHost.UseKestrel(fun o ->
            o.Listen(
                IPAddress.Loopback,
                0,
                fun lo ->
                    lo.Protocols <- Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1

                    match certificate with
                    | Some c ->
                        lo.UseHttps(fun (o: Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions) ->
                            o.ServerCertificate <- c

                            if requireClientCertificate then
                                o.ClientCertificateMode <-
                                    Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.RequireCertificate

                                o.ClientCertificateValidation <- fun _ _ _ -> true)
                        |> ignore
                    | None -> ()
            ))
        |> ignore

        let app = builder.Build()
        app.Run(RequestDelegate handler)
        app

    do app.StartAsync().GetAwaiter().GetResult()

    let port = listeningPort app

    /// A plain-http server.
    static member Plain(handler: HttpContext -> Task) = new Kestrel(handler, None, false)

    /// An https server with `certificate`; with `requireClientCertificate` it demands one from clients.
    static member Tls(handler: HttpContext -> Task, certificate, requireClientCertificate) =
        new Kestrel(handler, Some certificate, requireClientCertificate)

    member _.Port = port

    member _.Uri(path: string) =
        Uri(sprintf "%s://127.0.0.1:%d%s" (if certificate.IsSome then "https" else "http") port path)

    /// A new TCP connection to the server.
    member _.Connect() =
        task {
            let c = new TcpClient()
            c.NoDelay <- true
            do! c.ConnectAsync(IPAddress.Loopback, port)
            return c
        }

    interface IAsyncDisposable with
        member _.DisposeAsync() = app.DisposeAsync()

/// A Kestrel upstream that answers `text` at once, except a request for `heldPath`: that one sets `arrived`, waits for
/// `release`, then answers `heldText`. Returns (server, arrived, release).
let holdingKestrel (heldPath: string) (heldText: string) (text: string) =
    let arrived = Signal()
    let release = Signal()

    let server =
        Kestrel.Plain(fun ctx ->
            task {
                if ctx.Request.Path.Value = heldPath then
                    arrived.Set()
                    do! release.Task
                    do! ctx.Response.WriteAsync heldText
                else
                    do! ctx.Response.WriteAsync text
            })

    server, arrived, release

/// A scripted server that reads one request (its head and a body of `bodyLength` bytes), answers `response`
/// verbatim, and completes the task it returns with the request's exact text.
let recordingServer (bodyLength: int) (response: string) =
    let seen =
        TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously)

    let server =
        new ScriptedServer(fun _ s ->
            task {
                let! head = readHead s
                let body = Array.zeroCreate<byte> bodyLength
                do! s.ReadExactlyAsync(body, 0, body.Length)
                seen.TrySetResult(head + text body) |> ignore
                do! writeText s response
            })

    server, seen.Task

/// Runs a process, returns (exit code, stdout, stderr).
let run (file: string) (args: string list) =
    task {
        let psi = ProcessStartInfo(file)

        for a in args do
            psi.ArgumentList.Add a

        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEndAsync()
        let err = p.StandardError.ReadToEndAsync()
        do! p.WaitForExitAsync()
        let! o = out
        let! e = err
        return p.ExitCode, o, e
    }

/// The repository's root: the folder above the test assembly that holds HttpUtil.sln.
let repositoryRoot () =
    let mutable d = DirectoryInfo(AppContext.BaseDirectory)

    while not (isNull d) && not (File.Exists(Path.Combine(d.FullName, "HttpUtil.sln"))) do
        d <- d.Parent

    if isNull d then
        failwith "HttpUtil.sln not found above the test assembly"

    d.FullName

/// The configuration the tests were built in (bin/<Configuration>/net10.0).
let configuration () =
    DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent.Name

/// A process started by a test: its output is collected as it comes, and disposing it kills the whole tree.
type ChildProcess(file: string, args: string list, env: (string * string) list, workDir: string option) =
    let psi = ProcessStartInfo(file)

    do
        for a in args do
            psi.ArgumentList.Add a

        for (k, v) in env do
            psi.Environment[k] <- v

        workDir |> Option.iter (fun d -> psi.WorkingDirectory <- d)
        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        psi.RedirectStandardInput <- true

    let p = Process.Start psi
    let out = StringBuilder()
    let err = StringBuilder()
    let lines = Channels.Channel.CreateUnbounded<string>()

    do
        p.OutputDataReceived.Add(fun e ->
            if not (isNull e.Data) then
                lock out (fun () -> out.AppendLine e.Data |> ignore)
                lines.Writer.TryWrite e.Data |> ignore)

        p.ErrorDataReceived.Add(fun e ->
            if not (isNull e.Data) then
                lock err (fun () -> err.AppendLine e.Data |> ignore))

        p.BeginOutputReadLine()
        p.BeginErrorReadLine()

    member _.Id = p.Id
    member _.Output = lock out (fun () -> out.ToString())
    member _.Error = lock err (fun () -> err.ToString())

    /// The next line of standard output that satisfies `pred` (at most `seconds` to wait).
    member _.WaitForLine(pred: string -> bool, seconds: float) =
        task {
            use cts = new CancellationTokenSource(TimeSpan.FromSeconds seconds)
            let mutable found = None

            while found.IsNone do
                let! line = lines.Reader.ReadAsync(cts.Token)

                if pred line then
                    found <- Some line

            return found.Value
        }

    /// Waits for the exit (at most `seconds`, then kills it and fails); returns the exit code.
    member _.WaitForExit(seconds: float) =
        task {
            use cts = new CancellationTokenSource(TimeSpan.FromSeconds seconds)

            try
                do! p.WaitForExitAsync(cts.Token)
            with :? OperationCanceledException ->
                p.Kill true
                failwithf "%s %s did not exit within %.0f s" file (String.Join(" ", args)) seconds

            // The asynchronous readers may still be draining: WaitForExit() without a timeout waits for them.
            p.WaitForExit()
            return p.ExitCode
        }

    interface IDisposable with
        member _.Dispose() =
            if not p.HasExited then
                p.Kill true

            p.Dispose()

/// Runs `file args` to its end (at most `seconds`); returns the exit code, standard output and standard error.
let runFor (seconds: float) (env: (string * string) list) (workDir: string option) (file: string) (args: string list) =
    task {
        use p = new ChildProcess(file, args, env, workDir)
        let! code = p.WaitForExit seconds
        return code, p.Output, p.Error
    }

/// A loopback port nothing listens on (it was free a moment ago): a connection to it is refused.
let freePort () =
    let l = new TcpListener(IPAddress.Loopback, 0)
    l.Start()
    let port = (l.LocalEndpoint :?> IPEndPoint).Port
    l.Stop()
    port
