/// The plain-head fast path (Wire/PlainHead.fs) against the grammar: every head it accepts, the
/// grammar accepts with the same result; every head a serializer writes, it accepts as canonical;
/// a head it calls canonical serializes back to exactly its bytes (so its text can be rebuilt);
/// anything irregular it leaves to the grammar.
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
                        " "
                        "\t"
                        "\r"
                        "\n"
                        ":"
                        "\x00"
                        "\x7f"
                        "\xe9"
                        "\r\n "
                        "\r\n\t"
                        "\r\n"
                        "\n"
                        "HTTP/1.2"
                        "("
                        "\""
                        ","
                    ]

            let! delete = Gen.choose (0, 2)
            let cut = min delete (s.Length - at)
            s <- s.Substring(0, at) + piece + s.Substring(at + cut)

        return s
    }

let private text (bytes: byte[]) = Text.Encoding.Latin1.GetString bytes

let private plainResponse (s: string) =
    PlainHead.tryResponse (ReadOnlyMemory(latin1 s))

let private plainRequest (s: string) =
    PlainHead.tryRequest (ReadOnlyMemory(latin1 s))

[<Property(MaxTest = 500)>]
let ``every response head a serializer writes is read by the fast path as it was`` () =
    Prop.forAll (Arb.fromGen responseHead) (fun head ->
        plainResponse (text (serializeResponse head)) = ValueSome(struct (head, true)))

[<Property(MaxTest = 500)>]
let ``every request head a serializer writes is read by the fast path as it was`` () =
    Prop.forAll (Arb.fromGen requestHead) (fun head ->
        plainRequest (text (serializeRequest head)) = ValueSome(struct (head, true)))

/// Heads from `heads`, serialized and damaged: whenever the fast path (`plain`) accepts one, the
/// grammar accepts it with the same head, and a head called canonical serializes back to the text.
let private agreesWithGrammar heads serialize plain grammar =
    let damaged =
        gen {
            let! head = heads
            return! mutated (text (serialize head))
        }

    Prop.forAll (Arb.fromGen damaged) (fun s ->
        match plain s with
        | ValueNone -> true
        | ValueSome(struct (head, canonical)) ->
            Grammar.run grammar strict s = Ok head
            && (not canonical || text (serialize head) = s))

[<Property(MaxTest = 2000)>]
let ``a response head the fast path accepts, the grammar accepts with the same result`` () =
    agreesWithGrammar responseHead serializeResponse plainResponse Grammar.responseHead

[<Property(MaxTest = 2000)>]
let ``a request head the fast path accepts, the grammar accepts with the same result`` () =
    agreesWithGrammar requestHead serializeRequest plainRequest Grammar.requestHead

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
        Assert.That((plainResponse s).IsNone, s)

    for s in
        [
            "GET  / HTTP/1.1\r\n\r\n"
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n"
            "CONNECT /x HTTP/1.1\r\n\r\n" // a target that does not fit its method
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        ] do
        Assert.That((plainRequest s).IsNone, s)

[<Test>]
let ``common field names and values come back as shared strings`` () =
    let head =
        plainResponse "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"

    match head with
    | ValueSome(struct (h, _)) ->
        Assert.That(Object.ReferenceEquals(h.Headers[0].Name, "Content-Length"), Is.True)
        Assert.That(Object.ReferenceEquals(h.Headers[1].Value, "keep-alive"), Is.True)
        Assert.That(Object.ReferenceEquals(h.Reason, "OK"), Is.True)
    | ValueNone -> Assert.Fail "a plain head was not read"

[<Test>]
let ``the text of a head is exact whether it was read canonical, plain or through the grammar`` () =
    for s in
        [
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" // canonical: rebuilt on demand
            "HTTP/1.1 200 OK\r\nContent-Length:0  \r\n\r\n" // plain, not canonical
            "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n" // plain, no SP before an empty reason
        ] do
        match Parser.parseResponseBytes lenient (latin1 s) with
        | Ok(Complete(p, n)) ->
            Assert.That(p.Raw, Is.EqualTo s)
            Assert.That(p.Length, Is.EqualTo s.Length)
            Assert.That(n, Is.EqualTo(int64 s.Length))
        | other -> Assert.Fail(sprintf "%A" other)

    let folded = "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n" // obs-fold: through the grammar

    match Parser.parseResponseBytes lenient (latin1 folded) with
    | Ok(Complete(p, _)) -> Assert.That(p.Raw, Is.EqualTo folded)
    | other -> Assert.Fail(sprintf "%A" other)
