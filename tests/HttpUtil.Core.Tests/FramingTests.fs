module HttpUtil.Core.Tests.FramingTests

open NUnit.Framework
open HttpUtil.Core
open HttpUtil.Core.Framing
open HttpUtil.Core.Tests.Gen

let private req (fields: string) =
    let head, _ = request ("POST / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n") |> ok
    requestBody head

let private req10 (fields: string) =
    let head, _ = request ("POST / HTTP/1.0\r\n" + fields + "\r\n") |> ok
    requestBody head

let private resp (meth: string) (statusLine: string) (fields: string) =
    let head, _ = response (statusLine + "\r\n" + fields + "\r\n") |> ok
    responseBody meth head

[<Test>]
let ``a request without Content-Length or Transfer-Encoding has no body`` () =
    Assert.That(req "", Is.EqualTo(Ok NoBody: Result<BodyLength, HttpError>))

[<Test>]
let ``Content-Length gives the length, repeated identical values count once`` () =
    Assert.That(req "Content-Length: 42\r\n", Is.EqualTo(Ok(ContentLength 42L): Result<BodyLength, HttpError>))
    Assert.That(req "Content-Length: 0\r\n", Is.EqualTo(Ok(ContentLength 0L): Result<BodyLength, HttpError>))

    Assert.That(
        req "Content-Length: 7, 7\r\nContent-Length: 7\r\n",
        Is.EqualTo(Ok(ContentLength 7L): Result<BodyLength, HttpError>)
    )

    Assert.That(
        req "Content-Length: 9223372036854775807\r\n",
        Is.EqualTo(Ok(ContentLength System.Int64.MaxValue): Result<BodyLength, HttpError>)
    )

[<Test>]
let ``chunked as the final coding frames a request, in any letter case`` () =
    Assert.That(req "Transfer-Encoding: chunked\r\n", Is.EqualTo(Ok Chunked: Result<BodyLength, HttpError>))
    Assert.That(req "Transfer-Encoding: gzip, CHUNKED\r\n", Is.EqualTo(Ok Chunked: Result<BodyLength, HttpError>))

    Assert.That(
        req "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        Is.EqualTo(Ok Chunked: Result<BodyLength, HttpError>)
    )

// Request smuggling shapes (RFC 9112 section 11.2) and the rules of section 6.3.
[<TestCase("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "TransferEncodingWithContentLength")>]
[<TestCase("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "TransferEncodingWithContentLength")>]
[<TestCase("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", "TransferEncodingWithContentLength")>]
[<TestCase("Content-Length: 5\r\nContent-Length: 6\r\n", "DifferingContentLengths")>]
[<TestCase("Content-Length: 5, 6\r\n", "DifferingContentLengths")>]
[<TestCase("Content-Length: 0\r\nContent-Length: 5\r\n", "DifferingContentLengths")>]
[<TestCase("Content-Length: 5\r\nContent-Length: 005\r\n", "DifferingContentLengths")>]
[<TestCase("Content-Length: 05, 5\r\n", "DifferingContentLengths")>]
[<TestCase("Content-Length: -1\r\n", "InvalidContentLength")>]
[<TestCase("Content-Length: +5\r\n", "InvalidContentLength")>]
[<TestCase("Content-Length: 5x\r\n", "InvalidContentLength")>]
[<TestCase("Content-Length: 0x10\r\n", "InvalidContentLength")>]
[<TestCase("Content-Length: 1 2\r\n", "InvalidContentLength")>]
[<TestCase("Content-Length:\r\n", "InvalidContentLength")>]
[<TestCase("Content-Length: 5,\r\n", "InvalidContentLength")>]
[<TestCase("Content-Length: 9223372036854775808\r\n", "InvalidContentLength")>]
[<TestCase("Content-Length: 99999999999999999999\r\n", "InvalidContentLength")>]
[<TestCase("Content-Length: \xd9\xa3\r\n", "InvalidContentLength")>]
[<TestCase("Transfer-Encoding: gzip\r\n", "UnsupportedTransferCoding")>]
[<TestCase("Transfer-Encoding: xchunked\r\n", "UnsupportedTransferCoding")>]
[<TestCase("Transfer-Encoding: chunked, gzip\r\n", "UnsupportedTransferCoding")>]
[<TestCase("Transfer-Encoding: chunked, chunked\r\n", "UnsupportedTransferCoding")>]
[<TestCase("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "UnsupportedTransferCoding")>]
[<TestCase("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "UnsupportedTransferCoding")>]
[<TestCase("Transfer-Encoding: \"chunked\"\r\n", "UnsupportedTransferCoding")>]
[<TestCase("Transfer-Encoding: ,\r\n", "UnsupportedTransferCoding")>]
[<TestCase("Transfer-Encoding: chunked;q=1\r\n", "InvalidFieldValue")>]
[<TestCase("Transfer-Encoding: gzip, Chunked ; x=y\r\n", "InvalidFieldValue")>]
let ``ambiguous or invalid request framing is rejected`` (fields: string, kind: string) =
    let r = req fields
    Assert.That(string (kindOf r), Is.EqualTo(kind))

[<Test>]
let ``Transfer-Encoding in an HTTP/1.0 request is rejected`` () =
    Assert.That(req10 "Transfer-Encoding: chunked\r\n" |> kindOf, Is.EqualTo(ErrorKind.TransferEncodingInHttp10))
    Assert.That(req10 "Content-Length: 3\r\n", Is.EqualTo(Ok(ContentLength 3L): Result<BodyLength, HttpError>))

[<TestCase("HEAD", "HTTP/1.1 200 OK", "Content-Length: 100\r\n")>]
[<TestCase("GET", "HTTP/1.1 204 No Content", "")>]
[<TestCase("GET", "HTTP/1.1 304 Not Modified", "Content-Length: 55\r\n")>]
[<TestCase("GET", "HTTP/1.1 100 Continue", "")>]
[<TestCase("GET", "HTTP/1.1 103 Early Hints", "Link: </a.css>\r\n")>]
[<TestCase("CONNECT", "HTTP/1.1 200 Connection Established", "")>]
[<TestCase("HEAD", "HTTP/1.1 200 OK", "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n")>]
let ``responses that never have a body`` (meth: string, status: string, fields: string) =
    Assert.That(resp meth status fields, Is.EqualTo(Ok NoBody: Result<BodyLength, HttpError>))

[<Test>]
let ``response framing: length, chunked, or until close`` () =
    Assert.That(
        resp "GET" "HTTP/1.1 200 OK" "Content-Length: 12\r\n",
        Is.EqualTo(Ok(ContentLength 12L): Result<BodyLength, HttpError>)
    )

    Assert.That(
        resp "GET" "HTTP/1.1 200 OK" "Transfer-Encoding: chunked\r\n",
        Is.EqualTo(Ok Chunked: Result<BodyLength, HttpError>)
    )

    Assert.That(resp "GET" "HTTP/1.1 200 OK" "", Is.EqualTo(Ok UntilClose: Result<BodyLength, HttpError>))

    Assert.That(
        resp "GET" "HTTP/1.1 200 OK" "Transfer-Encoding: gzip\r\n",
        Is.EqualTo(Ok UntilClose: Result<BodyLength, HttpError>)
    )

    Assert.That(
        resp "CONNECT" "HTTP/1.1 407 Proxy Auth" "Content-Length: 2\r\n",
        Is.EqualTo(Ok(ContentLength 2L): Result<BodyLength, HttpError>)
    )

[<Test>]
let ``ambiguous response framing is rejected too`` () =
    Assert.That(
        resp "GET" "HTTP/1.1 200 OK" "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"
        |> kindOf,
        Is.EqualTo(ErrorKind.TransferEncodingWithContentLength)
    )

    Assert.That(
        resp "GET" "HTTP/1.1 200 OK" "Content-Length: 3\r\nContent-Length: 4\r\n"
        |> kindOf,
        Is.EqualTo(ErrorKind.DifferingContentLengths)
    )

    Assert.That(
        resp "GET" "HTTP/1.0 200 OK" "Transfer-Encoding: chunked\r\n" |> kindOf,
        Is.EqualTo(ErrorKind.TransferEncodingInHttp10)
    )

    Assert.That(
        resp "GET" "HTTP/1.1 200 OK" "Transfer-Encoding: chunked, gzip, chunked\r\n"
        |> kindOf,
        Is.EqualTo(ErrorKind.UnsupportedTransferCoding)
    )

[<TestCase("Transfer-Encoding: chunked, deflate\r\n")>]
[<TestCase("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n")>]
[<TestCase("Transfer-Encoding: gzip\r\n")>]
let ``a response whose codings do not end in chunked is read until the connection closes (RFC 9112 section 6.3)``
    (fields: string)
    =
    Assert.That(
        resp "GET" "HTTP/1.1 200 OK" fields,
        Is.EqualTo(Ok Framing.UntilClose: Result<Framing.BodyLength, HttpError>)
    )
