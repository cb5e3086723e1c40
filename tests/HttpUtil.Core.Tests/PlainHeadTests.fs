/// The plain-head fast path (Wire/PlainHead.fs) against the grammar: every head it accepts, the
/// grammar accepts with the same result; every head a serializer writes, it accepts; anything
/// irregular it leaves to the grammar.
module HttpUtil.Core.Tests.PlainHeadTests

open System
open NUnit.Framework
open FsCheck
open FsCheck.FSharp
open FsCheck.NUnit
open HttpUtil.Core
open HttpUtil.Core.Tests.Gen

/// `text` with a few edits at random places: characters from a hostile set inserted, bytes
/// deleted, a line end turned into a bare LF or an obs-fold.
let private mutated (text: string) =
    gen {
        let! edits = Gen.choose (1, 3)
        let mutable s = text

        for _ in 1..edits do
            let! at = Gen.choose (0, max 0 (s.Length - 1))

            let! piece =
                Gen.elements
                    [
                        " "; "\t"; "\r"; "\n"; ":"; "\x00"; "\x7f"; "\xe9"; "\r\n "; "\r\n\t"; "\r\n"; "\n"
                        "HTTP/1.2"; "("; "\""; ","
                    ]

            let! delete = Gen.choose (0, 2)
            let cut = min delete (s.Length - at)
            s <- s.Substring(0, at) + piece + s.Substring(at + cut)

        return s
    }

let private text (bytes: byte[]) = Text.Encoding.Latin1.GetString bytes

[<Property(MaxTest = 500)>]
let ``every response head a serializer writes is read by the fast path as it was`` () =
    Prop.forAll (Arb.fromGen responseHead) (fun head ->
        PlainHead.tryResponse (text (serializeResponse head)) = ValueSome head)

[<Property(MaxTest = 500)>]
let ``every request head a serializer writes is read by the fast path as it was`` () =
    Prop.forAll (Arb.fromGen requestHead) (fun head -> PlainHead.tryRequest (text (serializeRequest head)) = ValueSome head)

[<Property(MaxTest = 2000)>]
let ``a response head the fast path accepts, the grammar accepts with the same result`` () =
    let damaged =
        gen {
            let! head = responseHead
            return! mutated (text (serializeResponse head))
        }

    Prop.forAll (Arb.fromGen damaged) (fun s ->
        match PlainHead.tryResponse s with
        | ValueNone -> true
        | ValueSome head -> Grammar.run Grammar.responseHead strict s = Ok head)

[<Property(MaxTest = 2000)>]
let ``a request head the fast path accepts, the grammar accepts with the same result`` () =
    let damaged =
        gen {
            let! head = requestHead
            return! mutated (text (serializeRequest head))
        }

    Prop.forAll (Arb.fromGen damaged) (fun s ->
        match PlainHead.tryRequest s with
        | ValueNone -> true
        | ValueSome head -> Grammar.run Grammar.requestHead strict s = Ok head)

[<Test>]
let ``irregular heads are left to the grammar`` () =
    for s in
        [
            "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n" // bare LF
            "HTTP/1.1 200 OK\r\nX-A: 1\r\n  more\r\n\r\n" // obs-fold
            "HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n" // whitespace before the colon
            "HTTP/1.2 200 OK\r\n\r\n" // another version
            "HTTP/1.1 099 Low\r\n\r\n" // status below 100
            "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n" // a control char in a value
            "HTTP/1.1 200 OK\r\n\r\nextra" // bytes after the empty line
        ] do
        Assert.That(PlainHead.tryResponse s, Is.EqualTo(ValueNone: ResponseHead voption), s)

    for s in
        [
            "GET  / HTTP/1.1\r\n\r\n"
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n"
            "CONNECT /x HTTP/1.1\r\n\r\n" // a target that does not fit its method
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        ] do
        Assert.That(PlainHead.tryRequest s, Is.EqualTo(ValueNone: RequestHead voption), s)

[<Test>]
let ``common field names and values come back as shared strings`` () =
    let head =
        PlainHead.tryResponse "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"

    match head with
    | ValueSome h ->
        Assert.That(Object.ReferenceEquals(h.Headers[0].Name, "Content-Length"), Is.True)
        Assert.That(Object.ReferenceEquals(h.Headers[1].Value, "keep-alive"), Is.True)
        Assert.That(Object.ReferenceEquals(h.Reason, "OK"), Is.True)
    | ValueNone -> Assert.Fail "a plain head was not read"
