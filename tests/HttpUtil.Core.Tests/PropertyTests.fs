module HttpUtil.Core.Tests.PropertyTests

open System
open System.Buffers
open FsCheck
open FsCheck.FSharp
open FsCheck.NUnit
open HttpUtil.Core
open HttpUtil.Core.Tests.Gen

/// One edit of a byte string: replace, insert or delete at a position.
type Mutation =
    | Replace of at: int * value: byte
    | Insert of at: int * value: byte
    | Delete of at: int

let private mutate (bytes: byte[]) (edits: Mutation list) =
    let apply (b: byte[]) m =
        if b.Length = 0 then
            match m with
            | Insert(_, v) -> [| v |]
            | _ -> b
        else
            match m with
            | Replace(at, v) ->
                let c = Array.copy b
                c[abs at % b.Length] <- v
                c
            | Insert(at, v) ->
                let i = abs at % (b.Length + 1)
                Array.concat [ b[.. i - 1]; [| v |]; b[i..] ]
            | Delete at ->
                let i = abs at % b.Length
                Array.append b[.. i - 1] b[i + 1 ..]

    List.fold apply bytes edits

/// Bytes that matter to HTTP framing are tried more often than others.
let private interestingByte =
    Gen.frequency
        [
            3, Gen.elements [ 13uy; 10uy; 32uy; 9uy; 58uy; 0uy; 59uy; 34uy; 48uy; 127uy; 255uy ]
            2, Gen.choose (0, 255) |> Gen.map byte
        ]

let private mutation =
    Gen.oneof
        [
            Gen.zip (Gen.choose (0, 4000)) interestingByte |> Gen.map Replace
            Gen.zip (Gen.choose (0, 4000)) interestingByte |> Gen.map Insert
            Gen.choose (0, 4000) |> Gen.map Delete
        ]

let private pieces = Gen.listOf (Gen.arrayOf (Gen.choose (0, 255) |> Gen.map byte))

let private trailers =
    gen {
        let! n = Gen.choose (0, 5)
        let! fields = Gen.listOfLength n (Gen.zip token fieldValue)
        return Headers.ofList fields
    }

/// More arbitrary instances for the properties below.
type MoreArbitraries =
    static member Mutation() = Arb.fromGen mutation

type BodyCase =
    {
        Pieces: byte[] list
        Trailers: Headers
    }

type BodyArbitraries =
    static member BodyCase() =
        Gen.zip pieces trailers
        |> Gen.map (fun (p, t) -> { Pieces = p; Trailers = t })
        |> Arb.fromGen

let private settingsFor (lenient': bool) = if lenient' then lenient else strict

/// Decodes a chunked body from one (possibly multi-segment) sequence holding all of it.
let private decodeSequence settings (input: ReadOnlySequence<byte>) =
    let body = ResizeArray<byte>()
    let mutable rest = input
    let mutable decoder = ChunkedDecoder.Start
    let mutable result = None

    while result.IsNone do
        match Chunked.decode settings false decoder rest with
        | Error e -> result <- Some(Error e)
        | Ok step ->
            decoder <- step.Decoder

            match step.Output with
            | BodyData d -> body.AddRange(d.ToArray())
            | BodyEnd t -> result <- Some(Ok(body.ToArray(), t, rest.Length - step.Consumed))
            | NeedMoreData -> result <- Some(Ok(body.ToArray(), Headers.empty, -1L))

            rest <- rest.Slice(step.Consumed)

    result.Value

[<Property(MaxTest = 500, Arbitrary = [| typeof<Arbitraries> |])>]
let ``write then parse gives back the same request head`` (head: RequestHead) =
    let bytes = serializeRequest head

    match Parser.parseRequestBytes strict bytes with
    | Ok(Complete(p, n)) -> p.Head = head && n = int64 bytes.Length && p.Raw = text bytes
    | _ -> false

[<Property(MaxTest = 500, Arbitrary = [| typeof<Arbitraries> |])>]
let ``write then parse gives back the same response head`` (head: ResponseHead) =
    let bytes = serializeResponse head

    match Parser.parseResponseBytes strict bytes with
    | Ok(Complete(p, n)) -> p.Head = head && n = int64 bytes.Length
    | _ -> false

[<Property(MaxTest = 500, Arbitrary = [| typeof<Arbitraries>; typeof<MoreArbitraries> |])>]
let ``request parsing does not depend on how the bytes are split``
    (head: RequestHead)
    (edits: Mutation list)
    (cuts: int list)
    (bareLf: bool)
    =
    let bytes = mutate (serializeRequest head) (List.truncate 3 edits)
    let settings = settingsFor bareLf
    let whole = Parser.parseRequestBytes settings bytes
    let split = Parser.parseRequestHead settings (segmented bytes cuts)
    whole = split

[<Property(MaxTest = 500, Arbitrary = [| typeof<Arbitraries>; typeof<MoreArbitraries> |])>]
let ``response parsing does not depend on how the bytes are split``
    (head: ResponseHead)
    (edits: Mutation list)
    (cuts: int list)
    (lenient': bool)
    =
    let bytes = mutate (serializeResponse head) (List.truncate 3 edits)
    let settings = settingsFor lenient'
    Parser.parseResponseBytes settings bytes = Parser.parseResponseHead settings (segmented bytes cuts)

[<Property(MaxTest = 500, Arbitrary = [| typeof<Arbitraries> |])>]
let ``every strict prefix of a valid head needs more bytes`` (head: RequestHead) (resp: ResponseHead) (cuts: int list) =
    let check (parse: ReadOnlySequence<byte> -> bool) (bytes: byte[]) =
        cuts
        |> List.forall (fun c ->
            let n = abs c % bytes.Length
            parse (ReadOnlySequence(bytes, 0, n)))

    let needMore r =
        match r with
        | Ok NeedMore -> true
        | _ -> false

    check (Parser.parseRequestHead strict >> needMore) (serializeRequest head)
    && check (Parser.parseResponseHead strict >> needMore) (serializeResponse resp)

[<Property(MaxTest = 500, Arbitrary = [| typeof<BodyArbitraries> |])>]
let ``chunked encode then decode is the identity, however the bytes arrive`` (body: BodyCase) (cuts: int list) =
    let coded = Chunked.encode body.Pieces body.Trailers |> ok
    let expected = Array.concat body.Pieces

    let delivered =
        match decodeChunked strict false (deliveries coded cuts) with
        | Ok(data, t, 0) -> data = expected && t = body.Trailers
        | _ -> false

    let segmentedOk =
        match decodeSequence strict (segmented coded cuts) with
        | Ok(data, t, 0L) -> data = expected && t = body.Trailers
        | _ -> false

    delivered && segmentedOk

[<Property(MaxTest = 500, Arbitrary = [| typeof<BodyArbitraries>; typeof<MoreArbitraries> |])>]
let ``chunked decoding of mutated bodies is split-invariant and never throws``
    (body: BodyCase)
    (edits: Mutation list)
    (cuts: int list)
    =
    let coded =
        mutate (Chunked.encode body.Pieces body.Trailers |> ok) (List.truncate 4 edits)

    let whole = decodeSequence strict (ReadOnlySequence coded)
    let split = decodeSequence strict (segmented coded cuts)

    let sane =
        match whole with
        | Error e -> e.Offset >= 0L && e.Offset <= int64 coded.Length && e.Message.Length > 0
        | Ok(data, _, left) -> data.Length <= coded.Length && left <= int64 coded.Length

    whole = split && sane

[<Property(MaxTest = 500, Arbitrary = [| typeof<Arbitraries>; typeof<MoreArbitraries> |])>]
let ``mutated heads always parse or yield an error value inside the input``
    (head: RequestHead)
    (resp: ResponseHead)
    (edits: Mutation list)
    (lenient': bool)
    =
    let settings = settingsFor lenient'
    let req = mutate (serializeRequest head) edits
    let res = mutate (serializeResponse resp) edits

    let saneReq =
        match Parser.parseRequestBytes settings req with
        | Ok NeedMore -> true
        | Ok(Complete(p, n)) ->
            n <= int64 req.Length
            && Serializer.validateRequest p.Head = Ok()
            && (match Framing.requestBody p.Head with
                | Ok _ -> true
                | Error e -> e.Message.Length > 0)
        | Error e -> e.Offset >= 0L && e.Offset <= int64 req.Length && e.Message.Length > 0

    let saneRes =
        match Parser.parseResponseBytes settings res with
        | Ok NeedMore -> true
        | Ok(Complete(p, n)) ->
            n <= int64 res.Length
            && Serializer.validateResponse p.Head = Ok()
            && (match Framing.responseBody "GET" p.Head with
                | Ok _ -> true
                | Error e -> e.Message.Length > 0)
        | Error e -> e.Offset >= 0L && e.Offset <= int64 res.Length && e.Message.Length > 0

    saneReq && saneRes

[<Property(MaxTest = 500)>]
let ``arbitrary bytes never make a parser throw`` (bytes: byte[]) (isRequest: bool) =
    let input = ReadOnlySequence bytes

    let offsetOk (r: Result<_, HttpError>) =
        match r with
        | Error e -> e.Offset >= 0L && e.Offset <= int64 bytes.Length
        | Ok _ -> true

    offsetOk (Parser.parseRequestHead strict input)
    && offsetOk (Parser.parseResponseHead lenient input)
    && offsetOk (Parser.parseTrailers strict isRequest input)
    && offsetOk (Chunked.decode strict isRequest ChunkedDecoder.Start input |> Result.map ignore)
