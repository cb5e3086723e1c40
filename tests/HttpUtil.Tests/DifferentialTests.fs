/// Differential checks: the same raw requests to ServerConn, Kestrel, Node's HTTP server (llhttp) and Go's net/http
/// server, each on 127.0.0.1. For every request: who accepts it, and, where two accept it, what each parsed (method,
/// target, fields, body). Every disagreement with ServerConn must be one listed in `expected` below, with the rule
/// that justifies us (docs/CONFORMANCE.md explains each); a new one, or a listed one that went away, fails the test.
module HttpUtil.Tests.DifferentialTests

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open NUnit.Framework
open Microsoft.AspNetCore.Http
open HttpUtil
open HttpUtil.Tests.Support

/// What one server made of one request: refused (with the status it answered, 0 for none), or accepted with what it
/// parsed.
type Outcome =
    | Refused of status: int
    | Accepted of method: string * target: string * fields: (string * string) list * body: string

/// The request cases: a name and the raw bytes (each ends its connection's input after them).
let corpus: (string * string) list =
    [
        "plain GET", "GET /a?b=1 HTTP/1.1\r\nHost: t.test\r\nX-One: 1\r\n\r\n"
        "POST with Content-Length", "POST /p HTTP/1.1\r\nHost: t.test\r\nContent-Length: 5\r\n\r\nhello"
        "chunked POST with an extension and trailers",
        "POST /c HTTP/1.1\r\nHost: t.test\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n"
        "HTTP/1.0 with Host", "GET /old HTTP/1.0\r\nHost: t.test\r\n\r\n"
        "lower-case method", "get / HTTP/1.1\r\nHost: t.test\r\n\r\n"
        "absolute-form target", "GET http://t.test/abs?x=1 HTTP/1.1\r\nHost: t.test\r\n\r\n"
        "OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: t.test\r\n\r\n"
        "field value with inner spaces and OWS", "GET / HTTP/1.1\r\nHost: t.test\r\nX-A:   a  b   \r\n\r\n"
        "repeated field", "GET / HTTP/1.1\r\nHost: t.test\r\nX-R: 1\r\nX-R: 2\r\n\r\n"
        "Content-Length and Transfer-Encoding",
        "POST / HTTP/1.1\r\nHost: t.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        "two different Content-Lengths",
        "POST / HTTP/1.1\r\nHost: t.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
        "Content-Length list of equal values", "POST / HTTP/1.1\r\nHost: t.test\r\nContent-Length: 3, 3\r\n\r\nabc"
        "Content-Length with a plus sign", "POST / HTTP/1.1\r\nHost: t.test\r\nContent-Length: +3\r\n\r\nabc"
        "Transfer-Encoding not ending in chunked",
        "POST / HTTP/1.1\r\nHost: t.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
        "Transfer-Encoding: Chunked (capitals)",
        "POST / HTTP/1.1\r\nHost: t.test\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
        "bad chunk size", "POST / HTTP/1.1\r\nHost: t.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"
        "body shorter than Content-Length", "POST / HTTP/1.1\r\nHost: t.test\r\nContent-Length: 10\r\n\r\nabc"
        "no Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-One: 1\r\n\r\n"
        "two Host fields", "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"
        "space before the colon", "GET / HTTP/1.1\r\nHost: t.test\r\nX-Bad : 1\r\n\r\n"
        "obs-fold", "GET / HTTP/1.1\r\nHost: t.test\r\nX-F: a\r\n b\r\n\r\n"
        "bare LF line endings", "GET / HTTP/1.1\nHost: t.test\n\n"
        "bare CR in a value", "GET / HTTP/1.1\r\nHost: t.test\r\nX-C: a\rb\r\n\r\n"
        "NUL in a value", "GET / HTTP/1.1\r\nHost: t.test\r\nX-N: a\000b\r\n\r\n"
        "empty line before the request", "\r\nGET / HTTP/1.1\r\nHost: t.test\r\n\r\n"
        "two spaces in the request line", "GET  / HTTP/1.1\r\nHost: t.test\r\n\r\n"
        "HTTP/1.2", "GET / HTTP/1.2\r\nHost: t.test\r\n\r\n"
        "HTTP/2.0 in an HTTP/1 request line", "GET / HTTP/2.0\r\nHost: t.test\r\n\r\n"
        "invalid field name", "GET / HTTP/1.1\r\nHost: t.test\r\nX(y): 1\r\n\r\n"
    ]

/// The disagreements with ServerConn that are known and justified: (case, peer) -> the rule (docs/CONFORMANCE.md).
let expected: Map<string * string, string> =
    Map.ofList
        [
            ("lower-case method", "node"),
            "RFC 9110 section 9.1: a method is any token and case-sensitive; llhttp knows only the registered upper-case ones"
            ("OPTIONS *", "go"), "both accept; Go's server answers OPTIONS * itself and never calls the handler"
            ("Content-Length and Transfer-Encoding", "kestrel"),
            "RFC 9112 section 6.1: a server MAY reject it or use Transfer-Encoding alone; we reject (request smuggling)"
            ("Content-Length and Transfer-Encoding", "go"),
            "RFC 9112 section 6.1: a server MAY reject it or use Transfer-Encoding alone; we reject (request smuggling)"
            ("Content-Length list of equal values", "kestrel"),
            "RFC 9110 section 8.6: a recipient MAY take a list of identical values as one"
            ("Content-Length list of equal values", "go"),
            "RFC 9110 section 8.6: a recipient MAY take a list of identical values as one"
            ("Content-Length list of equal values", "node"),
            "RFC 9110 section 8.6: a recipient MAY take a list of identical values as one"
            ("Content-Length with a plus sign", "kestrel"),
            "RFC 9110 section 8.6: Content-Length is 1*DIGIT; Node and Go refuse too"
            ("obs-fold", "go"),
            "RFC 9112 section 5.2: a server MUST reject obs-fold or replace it with SP; we reject (Node and Kestrel too)"
            ("bare LF line endings", "kestrel"),
            "RFC 9112 section 2.2: a recipient MAY take a bare LF as a line end; strict by default (AllowBareLf)"
            ("bare LF line endings", "go"),
            "RFC 9112 section 2.2: a recipient MAY take a bare LF as a line end; strict by default (AllowBareLf)"
            ("empty line before the request", "go"),
            "RFC 9112 section 2.2: a server SHOULD ignore at least one empty line before the request-line"
            ("two spaces in the request line", "node"),
            "RFC 9112 section 3: one SP between the parts; Kestrel and Go refuse too"
            ("invalid field name", "kestrel"), "RFC 9110 section 5.1: a field name is a token; Node and Go refuse too"
            ("two Host fields", "node"),
            "RFC 9112 section 3.2: a server MUST answer 400 to a request with more than one Host"
            ("HTTP/1.2", "go"), "docs/CONFORMANCE.md: a request in a higher minor version gets a 505 hint (Kestrel too)"
            ("HTTP/2.0 in an HTTP/1 request line", "node"),
            "RFC 9110 section 15.6.6: 505 for a major version the server does not speak over this framing"
        ]

/// Fails unless the disagreements `found` are exactly the `known` ones: a new one must be justified and listed, and a
/// listed one that went away must leave the list.
let private assertOnlyKnown (known: Map<string * string, string>) (found: seq<(string * string) * string>) =
    let unexpected =
        found |> Seq.filter (fun (k, _) -> not (known.ContainsKey k)) |> List.ofSeq

    let gone =
        known
        |> Map.toList
        |> List.filter (fun (k, _) -> not (found |> Seq.exists (fun (f, _) -> f = k)))

    Assert.That(
        unexpected,
        Is.Empty,
        sprintf "disagreements not in the list:\n%s" (String.Join("\n", unexpected |> List.map string))
    )

    Assert.That(
        gone,
        Is.Empty,
        "listed disagreements that no longer happen: remove them from the list and docs/CONFORMANCE.md"
    )

// ---- the servers ----------------------------------------------------------------------------------------------

let private json (m: string) (target: string) (fields: (string * string) seq) (body: string) =
    let o = Text.Json.Nodes.JsonObject()
    o["method"] <- Text.Json.Nodes.JsonValue.Create m
    o["target"] <- Text.Json.Nodes.JsonValue.Create target
    let a = Text.Json.Nodes.JsonArray()

    for (n, v) in fields do
        let pair = Text.Json.Nodes.JsonArray()
        pair.Add(Text.Json.Nodes.JsonValue.Create(n: string))
        pair.Add(Text.Json.Nodes.JsonValue.Create(v: string))
        a.Add pair

    o["headers"] <- a
    o["body"] <- Text.Json.Nodes.JsonValue.Create body
    o.ToJsonString()

/// ServerConn on a loopback port: the first request of each connection, answered with what it parsed.
let private serverConnPeer () =
    new ScriptedServer(fun _ s ->
        task {
            use conn = new ServerConn(s)

            try
                let! request = conn.ReadAsync()
                let head = request.GetWireHead()

                let! body =
                    if isNull request.Content then
                        Task.FromResult ""
                    else
                        request.Content.ReadAsStringAsync()

                let fields = head.Headers |> Seq.map (fun f -> f.Name.ToLowerInvariant(), f.Value)

                let text = json request.Method.Method head.Target fields body

                use response =
                    new HttpResponseMessage(HttpStatusCode.OK, Content = new StringContent(text))

                response.Headers.ConnectionClose <- true
                do! conn.WriteAsync(request, response)
            with
            | :? MalformedMessageException as e ->
                do!
                    writeText
                        s
                        (sprintf "HTTP/1.1 %d Bad\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" e.Error.StatusHint)
            | :? HttpRequestException as e when (e.InnerException :? MalformedMessageException) ->
                // A broken body, found while reading it.
                let error = (e.InnerException :?> MalformedMessageException).Error

                do!
                    writeText
                        s
                        (sprintf "HTTP/1.1 %d Bad\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" error.StatusHint)
            | :? IOException -> ()
        })

/// Kestrel with a handler that answers with what it parsed.
let private kestrelPeer () =
    Kestrel.Plain(fun ctx ->
        task {
            let r = ctx.Request

            let raw =
                ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>().RawTarget

            use reader = new StreamReader(r.Body, Encoding.Latin1)
            let! body = reader.ReadToEndAsync()

            let fields =
                [
                    for h in r.Headers do
                        for v in h.Value do
                            h.Key.ToLowerInvariant(), v
                ]

            ctx.Response.Headers.Connection <- "close"
            do! ctx.Response.WriteAsync(json r.Method raw fields body)
        })

/// A peer program that prints its port, then serves; killed on dispose.
type private ProgramPeer(file: string, args: string list) =
    let p = new ChildProcess(file, args, [], None)

    let port =
        (p.WaitForLine((fun l -> l.Trim() <> ""), 60.0)).GetAwaiter().GetResult() |> int

    member _.Port = port

    interface IDisposable with
        member _.Dispose() = (p :> IDisposable).Dispose()

let private goPeerBinary =
    lazy
        (let dir = Path.Combine(repositoryRoot (), "tests", "peers", "go")

         let out =
             Path.Combine(Path.GetTempPath(), sprintf "httputil-go-peer-%d" (Environment.ProcessId))

         let code, _, err =
             (runFor
                 300.0
                 [
                     "GOCACHE", Path.Combine(Path.GetTempPath(), "httputil-go-peer-cache")
                     "GOFLAGS", "-mod=mod"
                 ]
                 (Some dir)
                 "go"
                 [ "build"; "-o"; out; "." ])
                 .GetAwaiter()
                 .GetResult()

         if code <> 0 then
             failwithf "go build of the Go peer failed: %s" err

         out)

// ---- one exchange ----------------------------------------------------------------------------------------------

/// Sends `raw` on a new connection to `port` and reads the answer to its end (every peer closes after its first
/// answer). A request that is incomplete by design ends the input at once; any other gets the end of the input only
/// if the peer still waits after 5 s (Kestrel must not get it early: it abandons a request whose client half-closed).
let private exchange (port: int) (incomplete: bool) (raw: string) =
    task {
        use tcp = new TcpClient()
        do! tcp.ConnectAsync(IPAddress.Loopback, port)
        let s = tcp.GetStream()
        do! s.WriteAsync(Encoding.Latin1.GetBytes raw)

        if incomplete then
            tcp.Client.Shutdown SocketShutdown.Send

        use ms = new MemoryStream()
        let buffer = Array.zeroCreate<byte> 8192
        let mutable ended = false
        let mutable halfClosed = incomplete
        use total = new CancellationTokenSource(TimeSpan.FromSeconds 15.0)

        while not ended do
            use wait = CancellationTokenSource.CreateLinkedTokenSource(total.Token)

            if not halfClosed then
                wait.CancelAfter(TimeSpan.FromSeconds 5.0)

            try
                let! n = s.ReadAsync(buffer, 0, buffer.Length, wait.Token)

                if n = 0 then ended <- true else ms.Write(buffer, 0, n)
            with
            | :? OperationCanceledException when not halfClosed && not total.IsCancellationRequested ->
                tcp.Client.Shutdown SocketShutdown.Send
                halfClosed <- true
            | :? OperationCanceledException
            | :? IOException -> ended <- true

        return Encoding.Latin1.GetString(ms.ToArray())
    }

let private outcome (answer: string) =
    let statusOf (a: string) =
        let parts = a.Split(' ')

        if parts.Length > 1 && a.StartsWith "HTTP/" then
            int parts[1]
        else
            0

    let status = statusOf answer
    let bodyAt = answer.IndexOf "\r\n\r\n"

    if status = 200 && bodyAt > 0 then
        let head = answer.Substring(0, bodyAt)

        let body =
            if head.Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase) then
                // Kestrel chunks its answer: take the data of the one chunk.
                let rest = answer.Substring(bodyAt + 4)
                let nl = rest.IndexOf "\r\n"
                let size = Convert.ToInt32(rest.Substring(0, nl), 16)
                rest.Substring(nl + 2, size)
            else
                answer.Substring(bodyAt + 4)

        let o =
            try
                JsonDocument.Parse(body).RootElement
            with e ->
                JsonDocument
                    .Parse(
                        "{\"method\":\"?\",\"target\":\"?\",\"headers\":[],\"body\":"
                        + JsonSerializer.Serialize(answer)
                        + "}"
                    )
                    .RootElement

        // Transfer codings are case-insensitive (RFC 9112 section 7); Go lower-cases them.
        let fields =
            [
                for pair in o.GetProperty("headers").EnumerateArray() ->
                    let name = pair[0].GetString()
                    let value = pair[1].GetString()

                    name,
                    (if name = "transfer-encoding" then
                         value.ToLowerInvariant()
                     else
                         value)
            ]
            |> List.sort

        Accepted(
            o.GetProperty("method").GetString(),
            o.GetProperty("target").GetString(),
            fields,
            o.GetProperty("body").GetString()
        )
    else
        Refused status

/// Where two outcomes differ, in words; None when they agree (refusals agree whatever their status).
let private difference (ours: Outcome) (theirs: Outcome) =
    match ours, theirs with
    | Refused _, Refused _ -> None
    | Accepted _, Refused s -> Some(sprintf "we accept, it refuses (%d)" s)
    | Refused s, Accepted _ -> Some(sprintf "we refuse (%d), it accepts" s)
    | Accepted(m1, t1, f1, b1), Accepted(m2, t2, f2, b2) ->
        if m1 <> m2 then Some(sprintf "method %s vs %s" m1 m2)
        elif t1 <> t2 then Some(sprintf "target %s vs %s" t1 t2)
        elif b1 <> b2 then Some(sprintf "body %A vs %A" b1 b2)
        elif f1 <> f2 then Some(sprintf "fields %A vs %A" f1 f2)
        else None

[<Test>]
let ``the same requests to ServerConn, Kestrel, Node and Go: every disagreement is a known and justified one`` () =
    task {
        for tool, package in [ "node", "nodejs"; "go", "golang-go" ] do
            let! code, _, _ = runFor 30.0 [] None "sh" [ "-c"; sprintf "command -v %s" tool ]

            Assert.That(
                code,
                Is.EqualTo 0,
                sprintf "%s is needed for the differential check: apt-get install -y %s" tool package
            )

        use ours = serverConnPeer ()
        use kestrel = kestrelPeer ()

        use node =
            new ProgramPeer("node", [ Path.Combine(repositoryRoot (), "tests", "peers", "echo-server.js") ])

        use go = new ProgramPeer(goPeerBinary.Force(), [])
        let peers = [ "kestrel", kestrel.Port; "node", node.Port; "go", go.Port ]
        let found = Collections.Generic.List<(string * string) * string>()
        let report = StringBuilder()

        for name, raw in corpus do
            let incomplete = name = "body shorter than Content-Length"
            let! mine = exchange ours.Port incomplete raw
            let o = outcome mine
            report.AppendLine(sprintf "%-45s serverconn %A" name o) |> ignore

            for peer, port in peers do
                let! answer = exchange port incomplete raw
                let theirs = outcome answer

                match difference o theirs with
                | Some d ->
                    found.Add(((name, peer), d))
                    report.AppendLine(sprintf "    %-8s DIFFERS: %s" peer d) |> ignore
                | None -> ()

        TestContext.Out.WriteLine(report.ToString())
        assertOnlyKnown expected found
    }
    |> sync

// ---- generated requests: combinations of framing, field and line-ending variants -------------------------------

/// A whole chunked body, and its length for a Content-Length beside it.
let private chunked = "3\r\nabc\r\n0\r\n\r\n"

/// Ways to frame a body: a name, the field lines (a line starting with whitespace continues the one before, as
/// obs-fold) and the body. Each is complete whichever framing a peer reads it by (a Content-Length counts the bytes
/// sent; a chunked body is whole), so no peer waits for more: only what each makes of the bytes differs.
let framings: (string * string list * string) list =
    let te value =
        [ "Transfer-Encoding: " + value ], chunked

    [
        "no body", [], ""
        "Content-Length", [ "Content-Length: 5" ], "hello"
        "Content-Length: 0", [ "Content-Length: 0" ], ""
        "Content-Length with leading zeros", [ "Content-Length: 005" ], "hello"
        "Content-Length with a plus sign", [ "Content-Length: +5" ], "hello"
        "Content-Length in hex", [ "Content-Length: 0x5" ], "hello"
        "negative Content-Length", [ "Content-Length: -5" ], "hello"
        "Content-Length list of equal values", [ "Content-Length: 5, 5" ], "hello"
        "Content-Length list without space", [ "Content-Length: 5,5" ], "hello"
        "Content-Length twice, equal", [ "Content-Length: 5"; "Content-Length: 5" ], "hello"
        "Content-Length with a trailing tab", [ "Content-Length: 5\t" ], "hello"
        "Content-Length with a space inside", [ "Content-Length: 5 5" ], "hello"
        "chunked", fst (te "chunked"), snd (te "chunked")
        "CHUNKED", fst (te "CHUNKED"), chunked
        "chunked after a tab", [ "Transfer-Encoding:\tchunked" ], chunked
        "chunked with trailing space", fst (te "chunked "), chunked
        "identity, chunked", fst (te "identity, chunked"), chunked
        "chunked, chunked", fst (te "chunked, chunked"), chunked
        "gzip, chunked", fst (te "gzip, chunked"), chunked
        "xchunked", fst (te "xchunked"), chunked
        "chunked with a parameter", fst (te "chunked;q=1"), chunked
        "chunked after a vertical tab", fst (te "\011chunked"), chunked
        "chunked, then identity in a second field",
        [ "Transfer-Encoding: chunked"; "Transfer-Encoding: identity" ],
        chunked
        "identity, then chunked in a second field",
        [ "Transfer-Encoding: identity"; "Transfer-Encoding: chunked" ],
        chunked
        "Transfer-Encoding with a space before the colon", [ "Transfer-Encoding : chunked" ], chunked
        "Transfer-Encoding folded onto a second line", [ "Transfer-Encoding:"; " chunked" ], chunked
        "Transfer_Encoding", [ "Transfer_Encoding: chunked" ], chunked
        "Content-Length, then Transfer-Encoding",
        [ sprintf "Content-Length: %d" chunked.Length; "Transfer-Encoding: chunked" ],
        chunked
        "Transfer-Encoding, then Content-Length",
        [ "Transfer-Encoding: chunked"; sprintf "Content-Length: %d" chunked.Length ],
        chunked
        "Content-Length and xchunked",
        [ sprintf "Content-Length: %d" chunked.Length; "Transfer-Encoding: xchunked" ],
        chunked
        "Content-Length and a Transfer-Encoding with a space before the colon",
        [ sprintf "Content-Length: %d" chunked.Length; "Transfer-Encoding : chunked" ],
        chunked
        "chunk size with leading zeros", fst (te "chunked"), "003\r\nabc\r\n0\r\n\r\n"
        "chunk size in capitals", fst (te "chunked"), "A\r\n0123456789\r\n0\r\n\r\n"
        "chunk extension", fst (te "chunked"), "3;name=value\r\nabc\r\n0\r\n\r\n"
        "chunk extension with a quoted value", fst (te "chunked"), "3;n=\"v; w\"\r\nabc\r\n0\r\n\r\n"
        "whitespace before a chunk extension", fst (te "chunked"), "3 ;n\r\nabc\r\n0\r\n\r\n"
        "chunk size 0x3", fst (te "chunked"), "0x3\r\nabc\r\n0\r\n\r\n"
        "trailer field", fst (te "chunked"), "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
        "chunk data longer than its size", fst (te "chunked"), "2\r\nabc\r\n0\r\n\r\n"
    ]

/// One generated request: its name and bytes.
let private generatedRequest (meth: string) (framingName, lines: string list, body: string) (extra: string) (lf: bool) =
    let head =
        [
            yield "Host: t.test"
            yield! lines
            if extra <> "" then
                yield extra
        ]
        |> List.fold (fun (acc: string) (l: string) -> acc + l + "\r\n") ""

    let requestLine = sprintf "%s /g?x=1 HTTP/1.1%s" meth (if lf then "\n" else "\r\n")

    let name =
        sprintf
            "%s | %s | %s%s"
            meth
            framingName
            (if extra = "" then "-" else extra)
            (if lf then " | LF after the request line" else "")

    name, framingName, requestLine + head + "\r\n" + body

/// Every combination: method, framing, an extra field and the request line's end.
let generatedRequests () =
    [
        for meth in [ "POST"; "GET" ] do
            for framing in framings do
                for extra in [ ""; "X-A:  b \t" ] do
                    for lf in [ false; true ] do
                        generatedRequest meth framing extra lf
    ]

/// Framings only ServerConn may accept when all three peers refuse, with the rule (docs/CONFORMANCE.md).
let private weAloneMayAccept =
    Map.ofList
        [
            "Content-Length list of equal values",
            "RFC 9110 section 8.6: a list of identical values MAY be taken as one"
            "Content-Length list without space", "RFC 9110 section 8.6: a list of identical values MAY be taken as one"
            "whitespace before a chunk extension",
            "RFC 9112 section 7.1.1: chunk-ext allows BWS before ';', which a recipient MUST parse and remove (RFC 9110 section 5.6.3)"
        ]

/// A random request for long runs: one to three framings' field lines together (each line's name in a random case,
/// its value with random padding, its end CRLF or now and then a bare LF) and the longest of their bodies, which is at
/// least as long as any Content-Length among them: a peer reading by any of the framings does not wait for more.
let private randomRequest (rng: Random) =
    let pick (xs: 'T list) = xs[rng.Next xs.Length]
    let chosen = [ for _ in 0 .. rng.Next 3 -> pick framings ]

    let mutate (line: string) =
        let colon = line.IndexOf ':'

        if colon <= 0 || Char.IsWhiteSpace line[0] then
            line
        else
            let name = line.Substring(0, colon)
            let value = line.Substring(colon + 1)

            let name =
                match rng.Next 4 with
                | 0 -> name.ToLowerInvariant()
                | 1 -> name.ToUpperInvariant()
                | _ -> name

            let value =
                match rng.Next 5 with
                | 0 -> " " + value
                | 1 -> "\t" + value.TrimStart()
                | 2 -> value + " "
                | _ -> value

            name + ":" + value

    let ending () =
        if rng.Next 12 = 0 then "\n" else "\r\n"

    let meth = pick [ "POST"; "GET"; "PUT" ]

    let lines =
        "Host: t.test"
        :: (chosen |> List.collect (fun (_, l, _) -> l) |> List.map mutate)

    let _, _, body = chosen |> List.maxBy (fun (_, _, b) -> b.Length)

    let raw =
        sprintf "%s /r HTTP/1.1%s" meth (ending ())
        + (lines |> List.map (fun l -> l + ending ()) |> String.concat "")
        + "\r\n"
        + body

    let names = chosen |> List.map (fun (n, _, _) -> n)
    sprintf "random %s | %s" meth (String.Join(" + ", names)), names, raw

/// Checks raw requests against ServerConn, Kestrel, Node and Go: where we and a peer both accept one, we read the same
/// method, target and body (else a smuggling-class difference); and we accept none that all three refuse unless one
/// of its framings is in `weAloneMayAccept`. Disagreements of other kinds are tallied and reported, not failed.
let private checkGenerated (cases: seq<string * string list * string>) =
    task {
        use ours = serverConnPeer ()
        use kestrel = kestrelPeer ()

        use node =
            new ProgramPeer("node", [ Path.Combine(repositoryRoot (), "tests", "peers", "echo-server.js") ])

        use go = new ProgramPeer(goPeerBinary.Force(), [])
        let peers = [ "kestrel", kestrel.Port; "node", node.Port; "go", go.Port ]
        let violations = ResizeArray<string>()
        let tally = Collections.Generic.Dictionary<string, int>()
        let report = StringBuilder()
        let mutable count = 0

        for name, framingNames, raw in cases do
            count <- count + 1
            let! mine = exchange ours.Port false raw
            let o = outcome mine
            let theirs = ResizeArray()

            for peer, port in peers do
                let! answer = exchange port false raw
                theirs.Add((peer, outcome answer))

            let verdict =
                match o with
                | Accepted _ -> "accepts"
                | Refused s -> sprintf "refuses (%d)" s

            let line = StringBuilder(sprintf "%s: serverconn %s" name verdict)

            for peer, t in theirs do
                match o, t with
                | Accepted(m1, t1, _, b1), Accepted(m2, t2, _, b2) when (m1, t1, b1) <> (m2, t2, b2) ->
                    violations.Add(
                        sprintf
                            "%s (%s): %s read another message (%A against our %A)"
                            name
                            (JsonSerializer.Serialize raw)
                            peer
                            (m2, t2, b2)
                            (m1, t1, b1)
                    )
                | _ -> ()

                match difference o t with
                | Some d ->
                    let kind =
                        sprintf "%s: %s" peer (if d.StartsWith "fields" then "fields differ" else d)

                    tally[kind] <-
                        (match tally.TryGetValue kind with
                         | true, n -> n
                         | _ -> 0)
                        + 1

                    line.Append(sprintf "; %s differs (%s)" peer d) |> ignore
                | None -> ()

            let allRefuse = theirs |> Seq.forall (fun (_, t) -> t.IsRefused)

            if
                o.IsAccepted
                && allRefuse
                && not (framingNames |> List.exists weAloneMayAccept.ContainsKey)
            then
                violations.Add(
                    sprintf
                        "%s (%s): we accept what Kestrel, Node and Go all refuse"
                        name
                        (JsonSerializer.Serialize raw)
                )

            report.AppendLine(line.ToString()) |> ignore

        TestContext.Out.WriteLine(sprintf "%d generated requests; disagreements by kind:" count)

        for KeyValue(k, n) in tally |> Seq.sortBy (fun kv -> kv.Key) do
            TestContext.Out.WriteLine(sprintf "  %-55s %d" k n)

        TestContext.Out.WriteLine(report.ToString())
        Assert.That(violations, Is.Empty, String.Join("\n", violations))
    }

[<Test>]
let ``generated requests to ServerConn, Kestrel, Node and Go: where two accept they read the same message, and we never accept alone what the rule does not allow``
    ()
    =
    checkGenerated (
        generatedRequests ()
        |> List.map (fun (name, framing, raw) -> name, [ framing ], raw)
    )
    |> sync

/// The long-run settings: HTTPUTIL_DIFF_SECONDS (None: the fixed CI sample) and the seed, HTTPUTIL_DIFF_SEED or a new one
/// for a timed run (a fixed one for CI).
let private diffRun () =
    let seconds =
        match Environment.GetEnvironmentVariable "HTTPUTIL_DIFF_SECONDS" with
        | null
        | "" -> None
        | s -> Some(float s)

    let seed =
        match Environment.GetEnvironmentVariable "HTTPUTIL_DIFF_SEED", seconds with
        | (null | ""), None -> 20261130
        | (null | ""), Some _ -> Random.Shared.Next()
        | s, _ -> int s

    seconds, seed

/// Random requests: 1,000 from a fixed seed in every run, or as many as fit in HTTPUTIL_DIFF_SECONDS (the Differential
/// target) from seed HTTPUTIL_DIFF_SEED or a new one, which it prints so a failure can be replayed.
[<Test>]
let ``random requests: where two accept they read the same message, and we never accept alone what the rule does not allow``
    ()
    =
    let seconds, seed = diffRun ()

    TestContext.Out.WriteLine(sprintf "seed %d (HTTPUTIL_DIFF_SEED)" seed)
    let rng = Random seed

    match seconds with
    | None -> checkGenerated [ for _ in 1..1000 -> randomRequest rng ] |> sync
    | Some seconds ->
        let until = DateTime.UtcNow.AddSeconds seconds

        let cases =
            seq {
                while DateTime.UtcNow < until do
                    yield randomRequest rng
            }

        // A long run has its own bound instead of the I/O tests' minute.
        (checkGenerated cases).WaitAsync(TimeSpan.FromSeconds(seconds + 300.0)).GetAwaiter().GetResult()

// ---- responses: ClientConn against Node's and Go's HTTP clients ------------------------------------------------

/// The response cases: a name and the raw bytes a server sends (then it closes the connection).
let responseCorpus: (string * string) list =
    [
        "plain 200 with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
        "chunked with trailers",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
        "delimited by close", "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil close"
        "Content-Length and Transfer-Encoding",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        "two different Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello"
        "codings not ending in chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw"
        "HTTP/1.2", "HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok"
        "no space after the status code", "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"
        "empty reason phrase", "HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok"
        "obs-fold", "HTTP/1.1 200 OK\r\nX-F: a\r\n b\r\nContent-Length: 2\r\n\r\nok"
        "bare LF line endings", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"
        "100 Continue before the answer", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        "204 with a Content-Length", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
        "space before the colon", "HTTP/1.1 200 OK\r\nX-B : 1\r\nContent-Length: 2\r\n\r\nok"
        "body shorter than Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
        "bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        "status 999", "HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok"
        "NUL in a value", "HTTP/1.1 200 OK\r\nX-N: a\000b\r\nContent-Length: 2\r\n\r\nok"
    ]

/// The known disagreements of ClientConn with the other clients: (case, peer) -> the rule (docs/CONFORMANCE.md).
let expectedResponses: Map<string * string, string> =
    Map.ofList
        [
            ("Content-Length and Transfer-Encoding", "go"),
            "RFC 9112 section 6.3 rule 3: it ought to be handled as an error (response splitting); Node refuses too"
            ("codings not ending in chunked", "go"),
            "RFC 9112 section 6.3 rule 4: a response is read until the connection closes; Node reads it too"
            ("HTTP/1.2", "node"),
            "RFC 9112 section 2.3: a higher minor version SHOULD be processed as the highest one implemented; Go reads it too"
            ("obs-fold", "go"),
            "RFC 9112 section 5.2: a gateway MAY discard such a response (502); AllowObsFoldInResponses replaces it with SP"
            ("bare LF line endings", "go"),
            "RFC 9112 section 2.2: a recipient MAY take a bare LF as a line end; strict by default (AllowBareLf)"
            ("space before the colon", "go"),
            "RFC 9112 section 5.1: no whitespace is allowed there; a proxy must not pass it on. Node refuses too"
            ("NUL in a value", "go"),
            "RFC 9110 section 5.5: a recipient MUST reject a value with NUL or replace it; Node refuses too"
        ]

/// What a client made of a response: refused, or accepted with status, fields (framing fields left out: the body
/// says what they decided) and body.
type ResponseOutcome =
    | Rejected
    | Read of status: int * fields: (string * string) list * body: string

let private framingField (name: string) =
    name = "content-length" || name = "transfer-encoding"

/// Serves case N of `responses` to a request for /case/N, then closes.
let private responseServerOf (responses: string list) =
    new ScriptedServer(fun _ s ->
        task {
            let! head = readHead s
            let path = head.Split(' ')[1]
            let i = int (path.Substring "/case/".Length)
            do! writeText s responses[i]
        })

/// Serves the response corpus.
let private responseServer () =
    responseServerOf (List.map snd responseCorpus)

let private clientConnReads (port: int) (i: int) =
    task {
        use tcp = new TcpClient()
        do! tcp.ConnectAsync(IPAddress.Loopback, port)
        use conn = new ClientConn(tcp.GetStream())

        use request =
            new HttpRequestMessage(HttpMethod.Get, sprintf "http://127.0.0.1:%d/case/%d" port i)

        try
            use! response = conn.DoAsync request
            let! body = response.Content.ReadAsByteArrayAsync()

            let fields =
                response.GetWireHead().Headers
                |> Seq.map (fun f -> f.Name.ToLowerInvariant(), f.Value)
                |> Seq.filter (fun (n, _) -> not (framingField n))
                |> List.ofSeq
                |> List.sort

            return Read(int response.StatusCode, fields, Encoding.Latin1.GetString body)
        with
        | :? IOException
        | :? HttpRequestException -> return Rejected
    }

let private peerReads (file: string) (args: string list) =
    task {
        let! _, out, err = runFor 60.0 [] None file args

        let line =
            out.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            |> Array.tryHead
            |> Option.defaultValue ""

        if line = "" then
            return failwithf "%s printed nothing: %s" file err
        else
            let o = JsonDocument.Parse(line).RootElement
            let mutable e = Unchecked.defaultof<JsonElement>

            if o.TryGetProperty("error", &e) then
                return Rejected
            else
                let fields =
                    [
                        for pair in o.GetProperty("headers").EnumerateArray() ->
                            pair[0].GetString(), pair[1].GetString()
                    ]
                    |> List.filter (fun (n, _) -> not (framingField n))
                    |> List.sort

                return Read(o.GetProperty("status").GetInt32(), fields, o.GetProperty("body").GetString())
    }

[<Test>]
let ``the same responses to ClientConn, Node's client and Go's client: every disagreement is a known and justified one``
    ()
    =
    task {
        use server = responseServer ()
        let fetch = Path.Combine(repositoryRoot (), "tests", "peers", "fetch-client.js")
        let go = goPeerBinary.Force()
        let found = Collections.Generic.List<(string * string) * string>()
        let report = StringBuilder()

        for i, (name, _) in List.indexed responseCorpus do
            let path = sprintf "/case/%d" i
            let! ours = clientConnReads server.Port i
            report.AppendLine(sprintf "%-40s clientconn %A" name ours) |> ignore

            for peer, file, args in
                [
                    "node", "node", [ fetch; string server.Port; path ]
                    "go", go, [ "client"; string server.Port; path ]
                ] do
                let! theirs = peerReads file args

                let d =
                    match ours, theirs with
                    | Rejected, Rejected -> None
                    | Read _, Rejected -> Some "we read it, it refuses"
                    | Rejected, Read(s, _, _) -> Some(sprintf "we refuse, it reads %d" s)
                    | Read(s1, f1, b1), Read(s2, f2, b2) ->
                        if s1 <> s2 then Some(sprintf "status %d vs %d" s1 s2)
                        elif b1 <> b2 then Some(sprintf "body %A vs %A" b1 b2)
                        elif f1 <> f2 then Some(sprintf "fields %A vs %A" f1 f2)
                        else None

                match d with
                | Some d ->
                    found.Add(((name, peer), d))
                    report.AppendLine(sprintf "    %-6s DIFFERS: %s" peer d) |> ignore
                | None -> ()

        TestContext.Out.WriteLine(report.ToString())
        assertOnlyKnown expectedResponses found
    }
    |> sync

/// Generated responses: each framing of the generated requests on a 200, with CRLF or a bare LF after the status line.
let generatedResponses () =
    [
        for framingName, lines, body in framings do
            for lf in [ false; true ] do
                let head = lines |> List.fold (fun (acc: string) (l: string) -> acc + l + "\r\n") ""

                sprintf "%s%s" framingName (if lf then " | LF after the status line" else ""),
                framingName,
                sprintf "HTTP/1.1 200 OK%sX-A: 1\r\n%s\r\n%s" (if lf then "\n" else "\r\n") head body
    ]

/// Framings only ClientConn may read when Node's and Go's clients both refuse, with the rule (docs/CONFORMANCE.md).
let private weAloneMayRead =
    Map.ofList
        [
            "Content-Length list of equal values",
            "RFC 9110 section 8.6: a list of identical values MAY be taken as one"
            "Content-Length list without space", "RFC 9110 section 8.6: a list of identical values MAY be taken as one"
            "whitespace before a chunk extension",
            "RFC 9112 section 7.1.1: chunk-ext allows BWS before ';', which a recipient MUST parse and remove"
        ]

/// Serves `cases` (name, framing names, raw response) and checks what ClientConn, Node's client and Go's client read of
/// each: where we and a peer both read one, the same status and body; and nothing read only by us unless one of its
/// framings is in `weAloneMayRead`. The violations found, and the report is written to the test output.
let private checkResponses (cases: (string * string list * string) list) =
    task {
        use server = responseServerOf (cases |> List.map (fun (_, _, raw) -> raw))
        let fetch = Path.Combine(repositoryRoot (), "tests", "peers", "fetch-client.js")
        let go = goPeerBinary.Force()
        let violations = ResizeArray<string>()
        let report = StringBuilder()

        for i, (name, framings, raw) in List.indexed cases do
            let path = sprintf "/case/%d" i
            let! ours = clientConnReads server.Port i

            let line =
                StringBuilder(sprintf "%s: clientconn %s" name (if ours.IsRead then "reads" else "refuses"))

            let theirs = ResizeArray()

            for peer, file, args in
                [
                    "node", "node", [ fetch; string server.Port; path ]
                    "go", go, [ "client"; string server.Port; path ]
                ] do
                let! t = peerReads file args
                theirs.Add t

                match ours, t with
                | Read(s1, _, b1), Read(s2, _, b2) when (s1, b1) <> (s2, b2) ->
                    violations.Add(
                        sprintf
                            "%s (%s): %s read another message (%d %A against our %d %A)"
                            name
                            (JsonSerializer.Serialize raw)
                            peer
                            s2
                            b2
                            s1
                            b1
                    )
                | Read _, Rejected -> line.Append(sprintf "; %s refuses" peer) |> ignore
                | Rejected, Read _ -> line.Append(sprintf "; %s reads" peer) |> ignore
                | _ -> ()

            if
                ours.IsRead
                && theirs |> Seq.forall (fun t -> t.IsRejected)
                && not (framings |> List.exists weAloneMayRead.ContainsKey)
            then
                violations.Add(
                    sprintf "%s (%s): we read what Node and Go both refuse" name (JsonSerializer.Serialize raw)
                )

            report.AppendLine(line.ToString()) |> ignore

        TestContext.Out.WriteLine(report.ToString())
        return List.ofSeq violations
    }

[<Test>]
let ``generated responses to ClientConn, Node's client and Go's client: where two read one they read the same message, and we never read alone what the rule does not allow``
    ()
    =
    task {
        let! violations =
            checkResponses (
                generatedResponses ()
                |> List.map (fun (name, framing, raw) -> name, [ framing ], raw)
            )

        Assert.That(violations, Is.Empty, String.Join("\n", violations))
    }
    |> sync

/// A random response: one to three framings' field lines together, in random name case and value padding, and the
/// longest of their bodies (the server closes after it, so a client reading until close gets it all).
let private randomResponse (rng: Random) =
    let name, names, raw = randomRequest rng
    // The request's head and body, with a status line in place of the request line.
    let afterLine = raw.IndexOf '\n' + 1

    let status =
        if raw[afterLine - 2] = '\r' then
            "HTTP/1.1 200 OK\r\n"
        else
            "HTTP/1.1 200 OK\n"

    name.Replace("random", "random response"), names, status + raw.Substring afterLine

/// Random responses: 40 from a fixed seed in every run, or batches of 40 for HTTPUTIL_DIFF_SECONDS (the Differential
/// target), from seed HTTPUTIL_DIFF_SEED or a new one it prints.
[<Test>]
let ``random responses: where two read one they read the same message, and we never read alone what the rule does not allow``
    ()
    =
    let seconds, seed = diffRun ()
    TestContext.Out.WriteLine(sprintf "seed %d (HTTPUTIL_DIFF_SEED)" seed)
    let rng = Random seed
    let until = DateTime.UtcNow.AddSeconds(defaultArg seconds 0.0)

    let run =
        task {
            let violations = ResizeArray<string>()
            let mutable count = 0
            let mutable go = true

            while go do
                let! found = checkResponses [ for _ in 1..40 -> randomResponse rng ]
                violations.AddRange found
                count <- count + 40
                go <- DateTime.UtcNow < until

            TestContext.Out.WriteLine(sprintf "%d random responses" count)
            Assert.That(violations, Is.Empty, String.Join("\n", violations))
        }

    run.WaitAsync(TimeSpan.FromSeconds(defaultArg seconds 0.0 + 300.0)).GetAwaiter().GetResult()
