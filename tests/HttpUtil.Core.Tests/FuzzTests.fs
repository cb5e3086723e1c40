/// Fuzzing with FsCheck (SharpFuzz is not served here): structure-aware inputs (heads and bodies the generators make,
/// then byte mutations, splices, duplications and truncations) checked against the invariants every input must keep.
/// A short run is part of the test suite; `dotnet fsi build.fsx -- Fuzz` runs for a duration
/// (HTTPUTIL_FUZZ_SECONDS) and saves every input that breaks an invariant under `regressions/`, where a test replays
/// them all from then on.
module HttpUtil.Core.Tests.FuzzTests

open System
open System.Buffers
open System.IO
open System.Security.Cryptography
open FsCheck
open FsCheck.FSharp
open NUnit.Framework
open HttpUtil.Core
open HttpUtil.Core.Tests.Gen
open HttpUtil.Core.Tests.BodyTests

/// Three ways to cut an input into deliveries, derived from its length (so a failure replays exactly).
let private cutSets (length: int) =
    [ [ 1 ]; [ length / 2 ]; [ 1..7 .. max 1 length ] ]

/// Runs `check`; a throw is a violation too.
let private guarded (what: string) (check: unit -> string option) =
    try
        check ()
    with e ->
        Some(sprintf "%s threw %s: %s" what (e.GetType().Name) e.Message)

/// The invariants for one input read as a request and as a response: the parsers and the body codec return a value
/// or an error value and never throw; the result does not depend on how the input is split; an error points inside
/// the input; every limit holds; a parsed head written and parsed again is the same head; a body never yields more
/// bytes than it was given or more than the request limit.
let violations (settings: ParserSettings) (input: byte[]) : string option =
    let limits = settings.Limits

    let headChecks
        (name: string)
        (parseBytes: byte[] -> Result<Incremental<Parsed<'H>>, HttpError>)
        (parseSeq: ReadOnlySequence<byte> -> Result<Incremental<Parsed<'H>>, HttpError>)
        (fieldsOf: 'H -> Headers)
        (write: 'H -> Result<byte[], HttpError>)
        (framingOf: 'H -> Result<Framing.BodyLength, HttpError>)
        =
        guarded name (fun () ->
            let whole = parseBytes input

            let splitDiffers =
                cutSets input.Length
                |> List.exists (fun cuts -> parseSeq (segmented input cuts) <> whole)

            if splitDiffers then
                Some(sprintf "%s: the result depends on how the bytes are split" name)
            else
                match whole with
                | Error e when e.Offset < 0L || e.Offset > int64 input.Length ->
                    Some(sprintf "%s: error offset %d outside the input (%d bytes)" name e.Offset input.Length)
                | Error e when e.Message.Length = 0 -> Some(sprintf "%s: an error without a message" name)
                | Error _
                | Ok NeedMore -> None
                | Ok(Complete(p, n)) ->
                    let fields = fieldsOf p.Head

                    if n > int64 input.Length then
                        Some(sprintf "%s: consumed %d of %d bytes" name n input.Length)
                    elif int64 p.Length > int64 limits.MaxHeadBytes then
                        Some(sprintf "%s: a head of %d bytes passed MaxHeadBytes %d" name p.Length limits.MaxHeadBytes)
                    elif fields.Count > limits.MaxHeaderCount then
                        Some(sprintf "%s: %d fields passed MaxHeaderCount %d" name fields.Count limits.MaxHeaderCount)
                    else
                        let roundTrip =
                            match write p.Head with
                            | Error _ -> None // a lenient parse may keep what the strict serializer refuses
                            | Ok bytes ->
                                match parseBytes bytes with
                                | Ok(Complete(again, _)) when again.Head = p.Head -> None
                                | other -> Some(sprintf "%s: written and parsed again it changed: %A" name other)

                        match roundTrip with
                        | Some v -> Some v
                        | None ->
                            match framingOf p.Head with
                            | Error _ -> None
                            | Ok framing ->
                                let rest = input[int n ..]

                                match decodeAll framing rest (cutSets rest.Length |> List.head) [ 5; 60; 1 ] with
                                | Ok(data, _, _) when data.Length > rest.Length ->
                                    Some(sprintf "%s: the body gave %d bytes out of %d" name data.Length rest.Length)
                                | Ok(data, _, _) when int64 data.Length > limits.MaxRequestBodyBytes ->
                                    Some(sprintf "%s: the body passed MaxRequestBodyBytes" name)
                                | _ -> None)

    [
        (fun () ->
            headChecks
                "request"
                (Parser.parseRequestBytes settings)
                (Parser.parseRequestHead settings)
                (fun h -> h.Headers)
                Serializer.requestBytes
                Framing.requestBody)
        (fun () ->
            headChecks
                "response"
                (Parser.parseResponseBytes settings)
                (Parser.parseResponseHead settings)
                (fun h -> h.Headers)
                Serializer.responseBytes
                (Framing.responseBody "GET"))
    ]
    |> List.tryPick (fun check -> check ())

// ---- the inputs ------------------------------------------------------------------------------------------------

let private anyByte = Gen.choose (0, 255) |> Gen.map byte

let private interesting =
    Gen.frequency
        [
            3, Gen.elements [ 13uy; 10uy; 32uy; 9uy; 58uy; 0uy; 59uy; 44uy; 48uy; 255uy ]
            1, anyByte
        ]

/// A valid message: a generated head, then a chunked or Content-Length body.
let private message =
    gen {
        let! asRequest = Gen.elements [ true; false ]

        let! head =
            if asRequest then
                requestHead |> Gen.map serializeRequest
            else
                responseHead |> Gen.map serializeResponse

        let! body = Gen.arrayOf anyByte
        let! chunked = Gen.elements [ true; false ]

        let framed =
            if chunked then
                let h = text head
                let h = h.Substring(0, h.Length - 2) + "Transfer-Encoding: chunked\r\n\r\n"
                Array.append (latin1 h) (Chunked.encode [ body ] Headers.empty |> ok)
            else
                let h = text head

                let h =
                    h.Substring(0, h.Length - 2) + sprintf "Content-Length: %d\r\n\r\n" body.Length

                Array.append (latin1 h) body

        return framed
    }

/// One change to an input.
let private change (input: byte[]) =
    let at n = Gen.choose (0, max 0 n)

    Gen.oneof
        [ // replace, insert, delete a byte
            gen {
                let! i = at (input.Length - 1)
                let! b = interesting

                return
                    if input.Length = 0 then
                        [| b |]
                    else
                        let c = Array.copy input
                        c[i] <- b
                        c
            }
            gen {
                let! i = at input.Length
                let! b = interesting
                return Array.concat [ input[.. i - 1]; [| b |]; input[i..] ]
            }
            gen {
                let! i = at (input.Length - 1)

                return
                    if input.Length = 0 then
                        input
                    else
                        Array.append input[.. i - 1] input[i + 1 ..]
            }
            // truncate
            gen {
                let! i = at input.Length
                return input[.. i - 1]
            }
            // duplicate a slice in place
            gen {
                let! a = at input.Length
                let! len = Gen.choose (0, 40)
                let b = min input.Length (a + len)
                return Array.concat [ input[.. b - 1]; input[a .. b - 1]; input[b..] ]
            }
            // splice in part of another message
            gen {
                let! other = message
                let! a = at input.Length
                let! b = at other.Length
                return Array.append input[.. a - 1] other[b..]
            }
        ]

/// A fuzz input: a valid message with up to six changes.
let input =
    gen {
        let! m = message
        let! n = Gen.choose (0, 6)
        let mutable current = Gen.constant m

        for _ in 1..n do
            current <- current |> Gen.bind change

        return! current
    }

let private regressions = Path.Combine(__SOURCE_DIRECTORY__, "regressions")

/// Saves an input that broke an invariant as a regression file; returns its path.
let private save (bytes: byte[]) =
    Directory.CreateDirectory regressions |> ignore

    let name =
        Convert.ToHexString(SHA256.HashData bytes).Substring(0, 16).ToLowerInvariant()

    let path = Path.Combine(regressions, name + ".http")
    File.WriteAllBytes(path, bytes)
    path

/// Checks `count` generated inputs (or as many as fit in HTTPUTIL_FUZZ_SECONDS), strict and lenient; fails on the
/// first violation, saving its input.
let private run (count: int) =
    let seconds =
        match Environment.GetEnvironmentVariable "HTTPUTIL_FUZZ_SECONDS" with
        | null
        | "" -> 0.0
        | s -> float s

    let until = DateTime.UtcNow.AddSeconds seconds
    let mutable checkedInputs = 0
    let mutable failure = None
    let mutable round = 0

    while failure.IsNone
          && (if seconds > 0.0 then
                  DateTime.UtcNow < until
              else
                  checkedInputs < count) do
        // A fixed seed for the suite's short run (the same inputs every time); a fresh one per round when fuzzing.
        let rnd =
            if seconds > 0.0 then
                Rnd(uint64 (Random.Shared.NextInt64()))
            else
                Rnd(uint64 (1000 + round))

        for bytes in Gen.sampleWithSeed rnd 30 200 input do
            if failure.IsNone then
                for settings in [ strict; lenient ] do
                    if failure.IsNone then
                        match violations settings bytes with
                        | Some v -> failure <- Some(v, save bytes)
                        | None -> ()

                checkedInputs <- checkedInputs + 1

        round <- round + 1

    match failure with
    | Some(v, path) -> Assert.Fail(sprintf "%s (input saved as %s; it is now a regression test)" v path)
    | None -> TestContext.Out.WriteLine(sprintf "%d inputs checked, strict and lenient" checkedInputs)

[<Test>]
[<Category("Fuzz")>]
let ``fuzzing: generated, mutated, spliced, duplicated and truncated messages keep every invariant`` () = run 2000

[<Test>]
let ``every saved fuzz input keeps every invariant`` () =
    let files = Directory.GetFiles(regressions, "*.http")
    Assert.That(files, Is.Not.Empty, "the seed inputs are there")

    for f in files do
        let bytes = File.ReadAllBytes f

        for settings in [ strict; lenient ] do
            Assert.That(violations settings bytes, Is.EqualTo None, Path.GetFileName f)
