module HttpUtil.Core.Tests.ForwardingTests

open System
open NUnit.Framework
open FsCheck
open FsCheck.FSharp
open FsCheck.NUnit
open HttpUtil.Core
open HttpUtil.Core.Tests.Gen

/// A name in random ASCII casing.
let private recased (name: string) =
    gen {
        let! flips = Gen.listOfLength name.Length (Gen.elements [ true; false ])

        return
            String(
                Seq.zip name flips
                |> Seq.map (fun (c, f) ->
                    if f then
                        Char.ToUpperInvariant c
                    else
                        Char.ToLowerInvariant c)
                |> Array.ofSeq
            )
    }

let private hopName =
    Gen.elements (List.ofArray Forwarding.hopByHop) |> Gen.bind recased

let private ordinaryName =
    token
    |> Gen.filter (fun n ->
        not (Forwarding.isHopByHop n)
        && not (
            Array.exists (fun f -> String.Equals(f, n, StringComparison.OrdinalIgnoreCase)) Forwarding.forwardingFields
        )
        && not (String.Equals(n, "Content-Length", StringComparison.OrdinalIgnoreCase)))

let private segment =
    Gen.elements [ "a"; "b"; "%2F"; "x y"; "ü"; ""; "."; ".." ]
    |> Gen.listOf
    |> Gen.map (String.concat "/")

type ForwardingArbitraries =
    static member Names() =
        Gen.zip hopName ordinaryName |> Arb.fromGen

[<Property(Arbitrary = [| typeof<ForwardingArbitraries> |])>]
let ``every hop-by-hop field is dropped both ways, in any casing`` (hop: string, ordinary: string) =
    let plan = Forwarding.planRequest null null null false
    let responsePlan = Forwarding.planResponse null null

    Forwarding.requestFieldFate plan hop = FieldFate.Drop
    && Forwarding.responseFieldFate responsePlan false hop = FieldFate.Drop
    && Forwarding.requestFieldFate plan ordinary = FieldFate.Forward
    && Forwarding.responseFieldFate responsePlan false ordinary = FieldFate.Forward

[<Property(Arbitrary = [| typeof<ForwardingArbitraries> |])>]
let ``a field named by any Connection element is dropped both ways`` (_hop: string, ordinary: string) =
    let connection = sprintf "keep-alive , %s,\t" (ordinary.ToUpperInvariant())
    let plan = Forwarding.planRequest connection null null false
    let responsePlan = Forwarding.planResponse connection null

    Forwarding.requestFieldFate plan ordinary = FieldFate.Drop
    && Forwarding.responseFieldFate responsePlan false ordinary = FieldFate.Drop

[<Test>]
let ``forwarding fields survive a Director and are dropped before a Rewrite`` () =
    let director = Forwarding.planRequest null null null false
    let rewrite = Forwarding.planRequest null null null true

    for name in [ "Forwarded"; "x-forwarded-for"; "X-Forwarded-Host"; "X-FORWARDED-PROTO" ] do
        Assert.That(Forwarding.requestFieldFate director name, Is.EqualTo FieldFate.Forward, name)
        Assert.That(Forwarding.requestFieldFate rewrite name, Is.EqualTo FieldFate.Drop, name)

    Assert.That(Forwarding.requestFieldFate director "X-Forwarded-Port", Is.EqualTo FieldFate.Forward)
    Assert.That(Forwarding.requestFieldFate director "content-length", Is.EqualTo FieldFate.Framing)

[<Test>]
let ``Te trailers and an upgrade are added back; nothing else is added`` () =
    let names (plan: HopPlan) =
        Forwarding.requestAdditions plan
        |> Array.map (fun f -> f.ToString())
        |> List.ofArray

    Assert.That(names (Forwarding.planRequest null null null false), Is.Empty)
    Assert.That(names (Forwarding.planRequest null null "gzip, trailers" false), Is.EqualTo(box [ "Te: trailers" ]))
    Assert.That(names (Forwarding.planRequest null null "gzip" false), Is.Empty)
    // Upgrade without `Connection: upgrade` is no upgrade: dropped and not added back.
    Assert.That(names (Forwarding.planRequest "close" "websocket" null false), Is.Empty)

    Assert.That(
        names (Forwarding.planRequest "keep-alive, Upgrade" "websocket" "trailers" false),
        Is.EqualTo(box [ "Te: trailers"; "Connection: Upgrade"; "Upgrade: websocket" ])
    )

[<Test>]
let ``a 101 keeps its Upgrade field; other responses drop it`` () =
    let plan = Forwarding.planResponse "Upgrade" "websocket"
    Assert.That(Forwarding.responseFieldFate plan true "upgrade", Is.EqualTo FieldFate.Forward)
    Assert.That(Forwarding.responseFieldFate plan false "Upgrade", Is.EqualTo FieldFate.Drop)
    Assert.That(Forwarding.responseFieldFate plan true "Connection", Is.EqualTo FieldFate.Drop)

[<Test>]
let ``a protocol switch is checked against what was asked`` () =
    let cases: (string | null * string | null * bool) list =
        [
            "websocket", "websocket", true
            "websocket", "WebSocket", true
            "websocket", "h2c", false
            null, "websocket", false
            "websocket", null, false
            "websocket", "web\u0001socket", false
        ]

    for asked, got, ok in cases do
        Assert.That(isNull (Forwarding.checkSwitch asked got), Is.EqualTo ok, sprintf "%A -> %A" asked got)

    Assert.That(
        Forwarding.checkRequestUpgrade (Forwarding.planRequest "upgrade" "web\u0007socket" null false),
        Is.Not.Null
    )

    Assert.That(Forwarding.checkRequestUpgrade (Forwarding.planRequest "upgrade" "websocket" null false), Is.Null)

[<Property>]
let ``paths are joined with exactly one slash, both kept whole otherwise`` () =
    Prop.forAll (Gen.zip segment segment |> Arb.fromGen) (fun (a, b) ->
        let a = "/" + a

        let stripEnd (s: string) =
            if s.EndsWith "/" then s.Substring(0, s.Length - 1) else s

        let stripStart (s: string) =
            if s.StartsWith "/" then s.Substring 1 else s

        Forwarding.joinPath a b = stripEnd a + "/" + stripStart b)

[<Test>]
let ``queries are joined with & only when both are present`` () =
    Assert.That(Forwarding.joinQuery "" "", Is.EqualTo "")
    Assert.That(Forwarding.joinQuery "a=1" "", Is.EqualTo "a=1")
    Assert.That(Forwarding.joinQuery "" "b=2", Is.EqualTo "b=2")
    Assert.That(Forwarding.joinQuery "a=1" "b=2", Is.EqualTo "a=1&b=2")

[<Test>]
let ``a target splits into path and query; absolute-form gives its path`` () =
    let split t =
        let struct (p, q) = Forwarding.splitTarget t
        p, q

    Assert.That(split "/a/b?x=1&y", Is.EqualTo(("/a/b", "x=1&y")))
    Assert.That(split "/a%2Fb", Is.EqualTo(("/a%2Fb", "")))
    Assert.That(split "http://h:81/p?q", Is.EqualTo(("/p", "q")))
    Assert.That(split "http://h:81", Is.EqualTo(("/", "")))
    Assert.That(split "http://h?q=1", Is.EqualTo(("/", "q=1")))

let private queryParam =
    Gen.elements [ "a=1"; "b"; "c=%41"; "d=x;y"; "e=%zz"; "f=%4"; "g=%"; "h=ok%20" ]

[<Property>]
let ``a sanitized query keeps the clean parameters in order and nothing an upstream could split differently`` () =
    Prop.forAll (Gen.listOf queryParam |> Arb.fromGen) (fun ps ->
        let query = String.Join("&", ps)

        let clean =
            ps
            |> List.filter (fun p ->
                not (p.Contains ';')
                && not (p.StartsWith "e=" || p.StartsWith "f=" || p.StartsWith "g="))

        match Forwarding.sanitizeQuery query with
        | null -> clean.Length = ps.Length
        | s -> s = String.Join("&", clean) && isNull (Forwarding.sanitizeQuery s))

[<Test>]
let ``the flush rule: event streams and unknown lengths every write, else as configured`` () =
    let ms (n: float) = TimeSpan.FromMilliseconds n

    let cases =
        [
            ms 0.0, "text/html", 10L, FlushMode.Buffered
            ms -1.0, "text/html", 10L, FlushMode.EveryWrite
            ms 100.0, "text/html", 10L, FlushMode.Periodic
            ms 0.0, "Text/Event-Stream; charset=utf-8", 10L, FlushMode.EveryWrite
            ms 100.0, "", -1L, FlushMode.EveryWrite
            ms 0.0, "text/event-streams", 10L, FlushMode.Buffered
        ]

    for configured, ct, length, expected in cases do
        Assert.That(
            Forwarding.flushMode configured ct length,
            Is.EqualTo expected,
            sprintf "%A %A %d" configured ct length
        )

[<Test>]
let ``forwarding fields: X-Forwarded-For appends, Forwarded quotes what is not a token`` () =
    Assert.That(Forwarding.appendForwardedFor null "10.0.0.1", Is.EqualTo "10.0.0.1")
    Assert.That(Forwarding.appendForwardedFor "1.2.3.4" "10.0.0.1", Is.EqualTo "1.2.3.4, 10.0.0.1")

    Assert.That(
        Forwarding.forwardedElement "192.0.2.60" "example.com" "http",
        Is.EqualTo "for=192.0.2.60;host=example.com;proto=http"
    )

    Assert.That(
        Forwarding.forwardedElement "2001:db8::1" "example.com:8080" "https",
        Is.EqualTo "for=\"[2001:db8::1]\";host=\"example.com:8080\";proto=https"
    )

    Assert.That(Forwarding.appendForwarded "for=a" "for=b", Is.EqualTo "for=a, for=b")

[<Test>]
let ``Server-Timing lists the phases that happened`` () =
    Assert.That(
        Forwarding.serverTiming Double.NaN Double.NaN Double.NaN 1.25 2.5,
        Is.EqualTo "wait;dur=1.25, total;dur=2.5"
    )

    Assert.That(
        Forwarding.serverTiming 0.1 0.2 0.3 0.4 1.0,
        Is.EqualTo "dns;dur=0.1, connect;dur=0.2, tls;dur=0.3, wait;dur=0.4, total;dur=1"
    )

[<Test>]
let ``each proxy error has one answer`` () =
    let all = Enum.GetValues<ProxyError>()

    for e in all do
        let status = ProxyErrors.status e
        Assert.That([ 0; 400; 413; 502; 504 ], Does.Contain status, string e)
        // Aborting is only for a response that started; those have no status to answer.
        if ProxyErrors.abortsClient e then
            Assert.That(status, Is.EqualTo 0, string e)

    Assert.That(ProxyErrors.status ProxyError.UpstreamTimeout, Is.EqualTo 504)
    Assert.That(ProxyErrors.status ProxyError.Upstream, Is.EqualTo 502)
    Assert.That(ProxyErrors.isClientSide ProxyError.ClientCanceled, Is.True)
    Assert.That(ProxyErrors.isClientSide ProxyError.Upstream, Is.False)

[<Test>]
let ``the fields a proxy builds itself are known by name in any casing; only 101 switches`` () =
    Assert.That(Forwarding.fieldRole "host", Is.EqualTo FieldRole.Host)
    Assert.That(Forwarding.fieldRole "X-FORWARDED-FOR", Is.EqualTo FieldRole.ForwardedFor)
    Assert.That(Forwarding.fieldRole "X-Forwarded-Host", Is.EqualTo FieldRole.Ordinary)
    Assert.That(Forwarding.switchesProtocols 101, Is.True)

    for status in [ 100; 102; 103; 200; 426 ] do
        Assert.That(Forwarding.switchesProtocols status, Is.False, string status)

    Assert.That(Forwarding.joinValues "cookie" [| "a=1"; "b=2" |], Is.EqualTo "a=1; b=2")
    Assert.That(Forwarding.joinValues "Accept" [| "a"; "b" |], Is.EqualTo "a, b")

[<Test>]
let ``a body over the proxy's limit is refused at once when announced, and is a 413 when the front refuses it`` () =
    Assert.That(ProxyErrors.refusesBody 1000L 1001L, Is.True)
    Assert.That(ProxyErrors.refusesBody 1000L 1000L, Is.False)
    Assert.That(ProxyErrors.refusesBody 1000L -1L, Is.False, "unknown length: checked as it arrives")
    Assert.That(ProxyErrors.refusesBody -1L 5_000_000_000L, Is.False, "no limit")
    Assert.That(ProxyErrors.ofClientBody 413, Is.EqualTo ProxyError.RequestBodyTooLarge)
    Assert.That(ProxyErrors.ofClientBody 0, Is.EqualTo ProxyError.RequestBodyClient)
    Assert.That(ProxyErrors.status ProxyError.RequestBodyTooLarge, Is.EqualTo 413)
