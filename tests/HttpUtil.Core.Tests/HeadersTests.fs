module HttpUtil.Core.Tests.HeadersTests

open NUnit.Framework
open HttpUtil.Core

let h =
    Headers.ofList
        [
            "Host", "example.com"
            "X-A", "1"
            "x-a", "2"
            "Connection", "keep-alive, Upgrade"
            "connection", " Close "
        ]

[<Test>]
let ``lookup ignores case and keeps order of repeated fields`` () =
    Assert.That(Headers.tryGet "HOST" h, Is.EqualTo(Some "example.com"))
    Assert.That(Headers.getAll "X-a" h, Is.EqualTo(box [ "1"; "2" ]))
    Assert.That(Headers.contains "missing" h, Is.False)
    Assert.That(Headers.tryGet "missing" h, Is.EqualTo(None: string option))

[<Test>]
let ``names keep their casing and wire order`` () =
    Assert.That(
        h.Fields |> Seq.map (fun f -> f.Name) |> List.ofSeq,
        Is.EqualTo(box [ "Host"; "X-A"; "x-a"; "Connection"; "connection" ])
    )

[<Test>]
let ``connection tokens are split, trimmed and lower-cased`` () =
    Assert.That(Headers.connectionTokens h, Is.EqualTo(box [ "keep-alive"; "upgrade"; "close" ]))
    Assert.That(Headers.hasConnectionToken "UPGRADE" h, Is.True)
    Assert.That(Headers.hasConnectionToken "te" h, Is.False)

[<Test>]
let ``set replaces every field of a name at the first one's place`` () =
    let s = Headers.set "x-A" "9" h

    Assert.That(
        Headers.toList s,
        Is.EqualTo(
            box
                [
                    "Host", "example.com"
                    "x-A", "9"
                    "Connection", "keep-alive, Upgrade"
                    "connection", " Close "
                ]
        )
    )

    Assert.That(Headers.getAll "X-A" h, Is.EqualTo(box [ "1"; "2" ]), "the original is unchanged")

[<Test>]
let ``add and remove return new lists`` () =
    let added = Headers.add "Via" "1.1 p" h
    Assert.That(added.Count, Is.EqualTo(h.Count + 1))
    Assert.That(added[added.Count - 1].Name, Is.EqualTo("Via"))
    let removed = Headers.remove "connection" h
    Assert.That(Headers.contains "Connection" removed, Is.False)
    Assert.That(removed.Count, Is.EqualTo(3))

[<Test>]
let ``indexing outside the list throws ArgumentOutOfRange`` () =
    Assert.Throws<System.ArgumentOutOfRangeException>(fun () -> h[99] |> ignore)
    |> ignore
