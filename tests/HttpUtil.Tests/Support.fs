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

/// Times a test-side await out, so a hang fails the test instead of the run.
let within (seconds: float) (t: Task<'T>) =
    t.WaitAsync(TimeSpan.FromSeconds seconds)

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

    let port =
        let addresses =
            app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>().Addresses

        Uri(Seq.head addresses).Port

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
