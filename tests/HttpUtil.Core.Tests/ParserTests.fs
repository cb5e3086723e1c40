module HttpUtil.Core.Tests.ParserTests

open System.Buffers
open NUnit.Framework
open HttpUtil.Core
open HttpUtil.Core.Tests.Gen

let private parseReqWith settings (s: string) =
    Parser.parseRequestBytes settings (latin1 s)

let private parseRespWith settings (s: string) =
    Parser.parseResponseBytes settings (latin1 s)

let private errorOf r =
    match r with
    | Error(e: HttpError) -> e
    | Ok v -> failwithf "expected an error, got %A" v

// ------------------------------------------------------------------------------------------
// Accepted shapes

[<Test>]
let ``parses a browser GET with its fields in order`` () =
    let s =
        "GET /search?q=a%20b HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11)\r\nAccept: */*\r\nX-Empty:\r\nX-Pad: \t v \t \r\n\r\nBODY"

    let head, n = request s |> ok
    Assert.That(head.Method, Is.EqualTo("GET"))
    Assert.That(head.Target, Is.EqualTo("/search?q=a%20b"))
    Assert.That(head.Form, Is.EqualTo(Origin))
    Assert.That(head.Version, Is.EqualTo(Http11))

    Assert.That(
        Headers.toList head.Headers,
        Is.EqualTo(
            box
                [
                    "Host", "example.com"
                    "User-Agent", "Mozilla/5.0 (X11)"
                    "Accept", "*/*"
                    "X-Empty", ""
                    "X-Pad", "v"
                ]
        )
    )

    Assert.That(n, Is.EqualTo(int64 (s.Length - 4)), "consumed stops where the body starts")

[<TestCase("OPTIONS * HTTP/1.1", "*", "Asterisk")>]
[<TestCase("CONNECT example.com:443 HTTP/1.1", "example.com:443", "Authority")>]
[<TestCase("CONNECT [::1]:8080 HTTP/1.1", "[::1]:8080", "Authority")>]
[<TestCase("GET http://example.com/x?y HTTP/1.1", "http://example.com/x?y", "Absolute")>]
[<TestCase("GET / HTTP/1.0", "/", "Origin")>]
let ``recognizes the four request-target forms`` (line: string, target: string, form: string) =
    let head, _ = request (line + "\r\n\r\n") |> ok
    Assert.That(head.Target, Is.EqualTo(target))
    Assert.That(sprintf "%A" head.Form, Is.EqualTo(form))

[<Test>]
let ``keeps the raw head text, without skipped leading empty lines`` () =
    match parseReqWith strict "\r\n\r\nGET / HTTP/1.1\r\nA: b\r\n\r\n" with
    | Ok(Complete(p, n)) ->
        Assert.That(p.Raw, Is.EqualTo("GET / HTTP/1.1\r\nA: b\r\n\r\n"))
        Assert.That(n, Is.EqualTo(4L + int64 p.Raw.Length))
    | other -> Assert.Fail(sprintf "%A" other)

[<Test>]
let ``unknown methods are accepted and their case is kept`` () =
    let p, _ = request "PROPFIND /x HTTP/1.1\r\n\r\n" |> ok
    Assert.That(p.Method, Is.EqualTo("PROPFIND"))
    let lower, _ = request "get / HTTP/1.1\r\n\r\n" |> ok
    Assert.That(lower.Method, Is.EqualTo("get"))

[<Test>]
let ``a response may have an empty reason, with or without its SP`` () =
    let withSp, _ = response "HTTP/1.1 204 \r\n\r\n" |> ok
    let without, _ = response "HTTP/1.0 200\r\nA: 1\r\n\r\n" |> ok
    Assert.That(withSp.Reason, Is.EqualTo(""))
    Assert.That(withSp.Status, Is.EqualTo(204))
    Assert.That(without.Reason, Is.EqualTo(""))
    Assert.That(without.Version, Is.EqualTo(Http10))

[<Test>]
let ``a reason phrase keeps its spaces and obs-text`` () =
    let head, _ = response "HTTP/1.1 404 Not  Found \xe9\r\n\r\n" |> ok
    Assert.That(head.Reason, Is.EqualTo("Not  Found \xe9"))

[<Test>]
let ``obs-text in a field value is kept byte for byte`` () =
    let head, _ = request "GET / HTTP/1.1\r\nX-Name: caf\xe9\r\n\r\n" |> ok
    Assert.That(Headers.tryGet "x-name" head.Headers, Is.EqualTo(Some "caf\xe9"))

[<Test>]
let ``incomplete heads ask for more bytes`` () =
    for s in
        [
            ""
            "G"
            "GET / HTTP/1.1"
            "GET / HTTP/1.1\r\n"
            "GET / HTTP/1.1\r\nHost: a\r\n"
            "GET / HTTP/1.1\r\n\r"
            "\r\n"
            "\r"
        ] do
        Assert.That(
            parseReqWith strict s,
            Is.EqualTo(Ok NeedMore: Result<Incremental<Parsed<RequestHead>>, HttpError>),
            s
        )

    for s in [ ""; "H"; "HTTP/1.1 200 OK\r\n" ] do
        Assert.That(
            parseRespWith strict s,
            Is.EqualTo(Ok NeedMore: Result<Incremental<Parsed<ResponseHead>>, HttpError>),
            s
        )

// ------------------------------------------------------------------------------------------
// Rejections: every rule has its own kind, at the right offset

[<Test>]
let ``whitespace between a field name and its colon is rejected`` () =
    let e = parseReqWith strict "GET / HTTP/1.1\r\nHost : a\r\n\r\n" |> errorOf
    Assert.That(e.Kind, Is.EqualTo(ErrorKind.WhitespaceBeforeColon))
    Assert.That(e.Offset, Is.EqualTo(20L))
    Assert.That(e.Message, Does.Contain("RFC 9112 section 5.1"))

[<TestCase("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 20)>]
[<TestCase("GET / HTTP/1.1\rHost: a\r\n\r\n", 14)>]
[<TestCase("GET / HTTP/1.1\r\nA: b\r\n\r\r\n\r\n", 22)>]
let ``a bare CR is rejected where it stands`` (s: string, offset: int64) =
    let e = parseReqWith strict s |> errorOf
    Assert.That(e.Kind, Is.EqualTo(ErrorKind.BareCR))
    Assert.That(e.Offset, Is.EqualTo(offset))

[<Test>]
let ``a bare LF is rejected unless allowed`` () =
    let s = "GET / HTTP/1.1\nHost: a\n\n"
    let e = parseReqWith strict s |> errorOf
    Assert.That(e.Kind, Is.EqualTo(ErrorKind.BareLF))
    Assert.That(e.Offset, Is.EqualTo(14L))

    match parseReqWith lenient s with
    | Ok(Complete(p, n)) ->
        Assert.That(Headers.tryGet "host" p.Head.Headers, Is.EqualTo(Some "a"))
        Assert.That(n, Is.EqualTo(int64 s.Length))
    | other -> Assert.Fail(sprintf "%A" other)

[<Test>]
let ``obs-fold is rejected in requests even when allowed for responses`` () =
    let s = "GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n"
    Assert.That(parseReqWith strict s |> errorOf |> _.Kind, Is.EqualTo(ErrorKind.ObsFold))
    Assert.That(parseReqWith lenient s |> errorOf |> _.Kind, Is.EqualTo(ErrorKind.ObsFold))

[<Test>]
let ``obs-fold in a response is rejected by default and replaced by SP when allowed`` () =
    let s = "HTTP/1.1 200 OK\r\nX-A: one\r\n \t two \r\n\tthree\r\nB: c\r\n\r\n"
    Assert.That(parseRespWith strict s |> errorOf |> _.Kind, Is.EqualTo(ErrorKind.ObsFold))

    match parseRespWith lenient s with
    | Ok(Complete(p, _)) ->
        Assert.That(Headers.toList p.Head.Headers, Is.EqualTo(box [ "X-A", "one two three"; "B", "c" ]))
    | other -> Assert.Fail(sprintf "%A" other)

[<Test>]
let ``whitespace before the first field line is rejected`` () =
    let e = parseReqWith strict "GET / HTTP/1.1\r\n Host: a\r\n\r\n" |> errorOf
    Assert.That(e.Kind, Is.EqualTo(ErrorKind.ObsFold))
    Assert.That(e.Offset, Is.EqualTo(16L))

[<TestCase("G\"T / HTTP/1.1\r\n\r\n", "InvalidMethod", 1)>]
[<TestCase("(GET) / HTTP/1.1\r\n\r\n", "InvalidMethod", 0)>]
[<TestCase("GET / HTTP/1.1\r\nA(b: c\r\n\r\n", "InvalidFieldName", 17)>]
[<TestCase("GET / HTTP/1.1\r\n: c\r\n\r\n", "InvalidFieldName", 16)>]
[<TestCase("GET / HTTP/1.1\r\nNoColon\r\n\r\n", "InvalidFieldName", 23)>]
[<TestCase("GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", "InvalidFieldValue", 20)>]
[<TestCase("GET / HTTP/1.1\r\nA: b\x7fc\r\n\r\n", "InvalidFieldValue", 20)>]
[<TestCase("GET / HTTP/1.1\r\nA: \x01\r\n\r\n", "InvalidFieldValue", 19)>]
[<TestCase("GET /\x80 HTTP/1.1\r\n\r\n", "InvalidTarget", 5)>]
[<TestCase("GET /a\tb HTTP/1.1\r\n\r\n", "InvalidTarget", 6)>]
[<TestCase("GET * HTTP/1.1\r\n\r\n", "InvalidTarget", 4)>]
[<TestCase("CONNECT /x HTTP/1.1\r\n\r\n", "InvalidTarget", 8)>]
[<TestCase("CONNECT example.com HTTP/1.1\r\n\r\n", "InvalidTarget", 8)>]
[<TestCase("GET example.com HTTP/1.1\r\n\r\n", "InvalidTarget", 4)>]
[<TestCase("GET  / HTTP/1.1\r\n\r\n", "InvalidRequestLine", 4)>]
[<TestCase("GET /\r\n\r\n", "InvalidRequestLine", 5)>]
[<TestCase("GET\r\n\r\n", "InvalidRequestLine", 3)>]
[<TestCase("GET / HTTP/1.1 \r\n\r\n", "InvalidRequestLine", 14)>]
[<TestCase("GET / HTTP/1.2\r\n\r\n", "UnsupportedVersion", 6)>]
[<TestCase("GET / HTTP/2.0\r\n\r\n", "UnsupportedVersion", 6)>]
[<TestCase("GET / HTTP/0.9\r\n\r\n", "UnsupportedVersion", 6)>]
[<TestCase("GET / http/1.1\r\n\r\n", "InvalidVersion", 6)>]
[<TestCase("GET / HTTP/1.10\r\n\r\n", "InvalidRequestLine", 14)>]
[<TestCase("GET / HTTP/11\r\n\r\n", "InvalidVersion", 6)>]
[<TestCase("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "Http2Preface", 0)>]
[<TestCase("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "InvalidMethod", 0)>]
let ``request rejections name their kind and offset`` (s: string, kind: string, offset: int64) =
    let e = parseReqWith strict s |> errorOf
    Assert.That(string e.Kind, Is.EqualTo(kind), e.Message)
    Assert.That(e.Offset, Is.EqualTo(offset), e.Message)
    Assert.That(e.Message, Is.Not.Empty)

[<Test>]
let ``the HTTP/2 preface is recognized before the request-line is complete`` () =
    let e = parseReqWith strict "PRI * HTTP/2.0" |> errorOf
    Assert.That(e.Kind, Is.EqualTo(ErrorKind.Http2Preface))

[<TestCase("HTTP/1.1 20 OK\r\n\r\n", "InvalidStatusLine", 9)>]
[<TestCase("HTTP/1.1 2000 OK\r\n\r\n", "InvalidStatusLine", 12)>]
[<TestCase("HTTP/1.1 099 Low\r\n\r\n", "InvalidStatusLine", 9)>]
[<TestCase("HTTP/1.1  200 OK\r\n\r\n", "InvalidStatusLine", 9)>]
[<TestCase("HTTP/1.1 200 O\x01K\r\n\r\n", "InvalidStatusLine", 14)>]
[<TestCase("HTTP/2.0 200 OK\r\n\r\n", "UnsupportedVersion", 0)>]
[<TestCase("HTTP/1.x 200 OK\r\n\r\n", "InvalidVersion", 0)>]
[<TestCase("HTTP/1.1200 OK\r\n\r\n", "InvalidStatusLine", 8)>]
[<TestCase("ICY 200 OK\r\n\r\n", "InvalidStatusLine", 0)>]
[<TestCase("HTTX", "InvalidStatusLine", 3)>]
[<TestCase("\r\nHTTP/1.1 200 OK\r\n\r\n", "InvalidStatusLine", 0)>]
[<TestCase("HTTP/1.1 200 OK\r\nA : b\r\n\r\n", "WhitespaceBeforeColon", 18)>]
let ``response rejections name their kind and offset`` (s: string, kind: string, offset: int64) =
    let e = parseRespWith strict s |> errorOf
    Assert.That(string e.Kind, Is.EqualTo(kind), e.Message)
    Assert.That(e.Offset, Is.EqualTo(offset), e.Message)

[<TestCase("HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\n")>]
[<TestCase("HTTP/1.9 200 OK\r\nContent-Length: 2\r\n\r\n")>]
let ``a response in a higher minor version of HTTP/1 is read as HTTP/1.1 (RFC 9112 section 2.3)`` (s: string) =
    match parseRespWith strict s with
    | Ok(Complete(p, n)) ->
        Assert.That(p.Head.Version, Is.EqualTo Http11)
        Assert.That(p.Head.Status, Is.EqualTo 200)
        Assert.That(n, Is.EqualTo(int64 s.Length))
    | other -> Assert.Fail(sprintf "%A" other)

[<Test>]
let ``a request in a higher minor version still gets UnsupportedVersion (the server decides: 505)`` () =
    let e = parseReqWith strict "GET / HTTP/1.2\r\nHost: a\r\n\r\n" |> errorOf
    Assert.That(e.Kind, Is.EqualTo ErrorKind.UnsupportedVersion)

// Incomplete heads fail at the first byte that makes them invalid, not when their end arrives.
[<TestCase("GET /\r\n", "InvalidRequestLine", 5)>]
[<TestCase("GET / HTTP/1.1 x\r\n", "InvalidRequestLine", 14)>]
[<TestCase("GET / HTTP/9.9\r\nHost: a\r\n", "UnsupportedVersion", 6)>]
[<TestCase("GET / HTTP/1.1\r\nHost: a\r\n\rX", "BareCR", 25)>]
[<TestCase("GET / HTTP/1.1\r\nHost: a\rb: c\r\n", "BareCR", 23)>]
[<TestCase("\r\nGET /\r\n", "InvalidRequestLine", 7)>]
let ``an incomplete request fails as soon as its bytes prove it invalid`` (s: string, kind: string, offset: int64) =
    let e = parseReqWith strict s |> errorOf
    Assert.That(string e.Kind, Is.EqualTo(kind), e.Message)
    Assert.That(e.Offset, Is.EqualTo(offset), e.Message)

[<TestCase("HTTP/1.1 20 OK\r\n", "InvalidStatusLine", 9)>]
[<TestCase("HTTP/1.1 200 OK\r\nA: b\r\n\rX", "BareCR", 23)>]
let ``an incomplete response fails as soon as its bytes prove it invalid`` (s: string, kind: string, offset: int64) =
    let e = parseRespWith strict s |> errorOf
    Assert.That(string e.Kind, Is.EqualTo(kind), e.Message)
    Assert.That(e.Offset, Is.EqualTo(offset), e.Message)

[<Test>]
let ``an incomplete head waits while what it holds may still be valid`` () =
    // A CR at the very end may be followed by LF; a start line still open may still end well.
    for s in
        [
            "GET / HTTP/1.1\r"
            "GET / HTTP/1.1\r\nHost: a\r"
            "GET /very/long/target?x=1 HTT"
        ] do
        Assert.That(
            parseReqWith strict s,
            Is.EqualTo(Ok NeedMore: Result<Incremental<Parsed<RequestHead>>, HttpError>),
            s
        )

// ------------------------------------------------------------------------------------------
// Limits

let private tight =
    { strict with
        Limits =
            { Limits.Default with
                MaxHeadBytes = 100
                MaxLineLength = 40
                MaxHeaderCount = 3
            }
    }

[<Test>]
let ``a head larger than MaxHeadBytes is rejected without waiting for its end`` () =
    let s =
        "GET / HTTP/1.1\r\n" + String.replicate 4 "X-Long-Name: 0123456789abcdef\r\n"

    let e = parseReqWith tight s |> errorOf
    Assert.That(e.Kind, Is.EqualTo(ErrorKind.HeadTooLarge))
    Assert.That(e.Message, Does.Contain("MaxHeadBytes"))

[<Test>]
let ``a line longer than MaxLineLength is rejected even before its end arrives`` () =
    let partial = "GET /" + String.replicate 60 "a"
    let e = parseReqWith tight partial |> errorOf
    // The request-line itself: 414 URI Too Long; any other line: 431.
    Assert.That(e.Kind, Is.EqualTo(ErrorKind.RequestLineTooLong))
    Assert.That(e.StatusHint, Is.EqualTo 414)
    let whole = "GET / HTTP/1.1\r\nA: " + String.replicate 50 "b" + "\r\n\r\n"
    let e = parseReqWith tight whole |> errorOf
    Assert.That(e.Kind, Is.EqualTo(ErrorKind.LineTooLong))
    Assert.That(e.StatusHint, Is.EqualTo 431)
    Assert.That(e.Offset, Is.EqualTo(16L))

[<Test>]
let ``a line of exactly MaxLineLength is accepted`` () =
    let line = "A: " + String.replicate 37 "b"
    Assert.That(line.Length, Is.EqualTo(40))

    match parseReqWith tight ("GET / HTTP/1.1\r\n" + line + "\r\n\r\n") with
    | Ok(Complete _) -> ()
    | other -> Assert.Fail(sprintf "%A" other)

[<Test>]
let ``more than MaxHeaderCount fields are rejected`` () =
    let s = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"
    let e = parseReqWith tight s |> errorOf
    Assert.That(e.Kind, Is.EqualTo(ErrorKind.TooManyHeaders))
    Assert.That(e.Offset, Is.EqualTo(34L))
    let three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"

    match parseReqWith tight three with
    | Ok(Complete(p, _)) -> Assert.That(p.Head.Headers.Count, Is.EqualTo(3))
    | other -> Assert.Fail(sprintf "%A" other)

[<Test>]
let ``endless empty lines before a request-line hit MaxHeadBytes`` () =
    let s = String.replicate 60 "\r\n"
    Assert.That(parseReqWith tight s |> errorOf |> _.Kind, Is.EqualTo(ErrorKind.HeadTooLarge))

[<Test>]
let ``errors keep offsets from the start of a multi-segment input`` () =
    let bytes = latin1 "GET / HTTP/1.1\r\nGood: 1\r\nBad : 2\r\n\r\n"
    let e = Parser.parseRequestHead strict (segmented bytes [ 3; 17; 26 ]) |> errorOf
    Assert.That(e.Kind, Is.EqualTo(ErrorKind.WhitespaceBeforeColon))
    Assert.That(e.Offset, Is.EqualTo(28L))

// ------------------------------------------------------------------------------------------
// Serializer

[<Test>]
let ``the serializer writes the head byte for byte`` () =
    let head =
        {
            Method = "POST"
            Target = "/submit?x=1"
            Form = Origin
            Version = Http11
            Headers = Headers.ofList [ "host", "a.example"; "Content-Length", "3"; "X-CASE", "MiXeD" ]
        }

    Assert.That(
        text (serializeRequest head),
        Is.EqualTo("POST /submit?x=1 HTTP/1.1\r\nhost: a.example\r\nContent-Length: 3\r\nX-CASE: MiXeD\r\n\r\n")
    )

    let resp =
        {
            Version = Http10
            Status = 503
            Reason = ""
            Headers = Headers.empty
        }

    Assert.That(text (serializeResponse resp), Is.EqualTo("HTTP/1.0 503 \r\n\r\n"))

[<TestCase("X-A", "a\r\nInjected: yes")>]
[<TestCase("X-A", "a\nb")>]
[<TestCase("X-A", " leading")>]
[<TestCase("X-A", "nul\x00")>]
[<TestCase("X A", "v")>]
[<TestCase("", "v")>]
[<TestCase("X-A", "wide\u0100")>]
let ``the serializer refuses fields that would inject or mislead`` (name: string, value: string) =
    let head =
        {
            Method = "GET"
            Target = "/"
            Form = Origin
            Version = Http11
            Headers = Headers.ofList [ name, value ]
        }

    Assert.That(Serializer.requestBytes head |> kindOf, Is.EqualTo(ErrorKind.InvalidHead))

[<TestCase("GET", "/a b", "Origin")>]
[<TestCase("GET", "*", "Asterisk")>]
[<TestCase("G T", "/", "Origin")>]
[<TestCase("GET", "/x", "Absolute")>]
[<TestCase("GET", "", "Origin")>]
let ``the serializer refuses invalid request-lines`` (m: string, target: string, form: string) =
    let f =
        match form with
        | "Asterisk" -> Asterisk
        | "Absolute" -> Absolute
        | _ -> Origin

    let head =
        {
            Method = m
            Target = target
            Form = f
            Version = Http11
            Headers = Headers.empty
        }

    Assert.That(Serializer.requestBytes head |> kindOf, Is.EqualTo(ErrorKind.InvalidHead))

[<Test>]
let ``the serializer refuses a reason with CRLF and a status outside 100-999`` () =
    let r =
        {
            Version = Http11
            Status = 200
            Reason = "OK\r\nX: y"
            Headers = Headers.empty
        }

    Assert.That(Serializer.responseBytes r |> kindOf, Is.EqualTo(ErrorKind.InvalidHead))

    Assert.That(
        Serializer.responseBytes { r with Reason = "OK"; Status = 42 } |> kindOf,
        Is.EqualTo(ErrorKind.InvalidHead)
    )

[<Test>]
let ``writes go to any buffer writer and report their length`` () =
    let w = ArrayBufferWriter<byte>()

    let head =
        {
            Version = Http11
            Status = 200
            Reason = "OK"
            Headers = Headers.ofList [ "A", "b" ]
        }

    let n = Serializer.writeResponse w head |> ok
    Assert.That(n, Is.EqualTo(w.WrittenCount))
    Assert.That(text (w.WrittenSpan.ToArray()), Is.EqualTo("HTTP/1.1 200 OK\r\nA: b\r\n\r\n"))
