/// Generators of valid HTTP/1.x heads and helpers shared by the tests.
module HttpUtil.Core.Tests.Gen

open System
open System.Buffers
open System.Text
open FsCheck
open FsCheck.FSharp
open HttpUtil.Core

/// One segment of a hand-built multi-segment sequence.
type private Segment(memory: ReadOnlyMemory<byte>, index: int64) =
    inherit ReadOnlySequenceSegment<byte>()

    do
        base.Memory <- memory
        base.RunningIndex <- index

    member this.Link(next: Segment) = this.Next <- next

/// The (start, end) ranges that cut `bytes` at the given positions (any int, taken modulo the
/// length plus one); empty ranges included.
let private ranges (bytes: byte[]) (cuts: int list) =
    let points =
        cuts
        |> List.map (fun c -> if bytes.Length = 0 then 0 else abs c % (bytes.Length + 1))
        |> List.sort

    List.pairwise ((0 :: points) @ [ bytes.Length ])

/// A sequence whose segments are `bytes` cut at the given positions (empty pieces included,
/// as a PipeReader may deliver them).
let segmented (bytes: byte[]) (cuts: int list) : ReadOnlySequence<byte> =
    let pieces =
        ranges bytes cuts |> List.map (fun (a, b) -> ReadOnlyMemory(bytes, a, b - a))

    match pieces with
    | [ only ] -> ReadOnlySequence<byte>(only)
    | first :: rest ->
        let head = Segment(first, 0L)
        let mutable last = head
        let mutable index = int64 first.Length

        for p in rest do
            let s = Segment(p, index)
            last.Link s
            last <- s
            index <- index + int64 p.Length

        ReadOnlySequence<byte>(head, 0, last, last.Memory.Length)
    | [] -> ReadOnlySequence<byte>(Array.empty<byte>)

let latin1 (s: string) = Encoding.Latin1.GetBytes s
let text (b: byte[]) = Encoding.Latin1.GetString b

let private tchars =
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

let private stringOf (chars: Gen<char>) (minLen: int) (maxLen: int) =
    gen {
        let! n = Gen.choose (minLen, maxLen)
        let! cs = Gen.arrayOfLength n chars
        return String(cs)
    }

let tokenChar = Gen.elements tchars
let token = stringOf tokenChar 1 12

/// VCHAR (what a target may hold).
let vchar = Gen.choose (0x21, 0x7e) |> Gen.map char

/// field-vchar or SP/HTAB, obs-text included.
let valueChar =
    Gen.frequency
        [
            6, vchar
            1, Gen.elements [ ' '; '\t' ]
            1, Gen.choose (0x80, 0xff) |> Gen.map char
        ]

/// A valid field value: no whitespace at either end.
let fieldValue = stringOf valueChar 0 40 |> Gen.map (fun s -> s.Trim(' ', '\t'))

let headers =
    gen {
        let! n = Gen.choose (0, 30)
        let! fields = Gen.listOfLength n (Gen.zip token fieldValue)
        return Headers.ofList fields
    }

let version = Gen.elements [ Http10; Http11 ]

let private originTarget = stringOf vchar 0 30 |> Gen.map (fun s -> "/" + s)

let private absoluteTarget =
    gen {
        let! scheme = Gen.elements [ "http"; "https"; "a+b.c-d"; "ws" ]
        let! host = stringOf (Gen.elements "abcxyz019.-") 1 12
        let! path = originTarget
        return scheme + "://" + host + path
    }

let private authorityTarget =
    gen {
        let! host = stringOf (Gen.elements "abcxyz019.-") 1 12
        let! port = Gen.choose (1, 65535)
        return sprintf "%s:%d" host port
    }

/// A valid request head in any of the four target forms.
let requestHead =
    gen {
        let! form = Gen.elements [ Origin; Origin; Absolute; Authority; Asterisk ]
        let! m = token

        let! target =
            match form with
            | Origin -> originTarget
            | Absolute -> absoluteTarget
            | Authority -> authorityTarget
            | Asterisk -> Gen.constant "*"

        let m =
            match form with
            | Authority -> "CONNECT"
            | Asterisk -> "OPTIONS"
            | _ when m = "CONNECT" || m = "PRI" -> "GET"
            | _ -> m

        let! v = version
        let! h = headers

        return
            {
                Method = m
                Target = target
                Form = form
                Version = v
                Headers = h
            }
    }

/// A valid response head (reason phrases may be empty or hold spaces anywhere).
let responseHead =
    gen {
        let! v = version
        let! status = Gen.choose (100, 999)
        let! reason = stringOf valueChar 0 20
        let! h = headers

        return
            {
                Version = v
                Status = status
                Reason = reason
                Headers = h
            }
    }

/// Arbitrary instances for the properties.
type Arbitraries =
    static member RequestHead() = Arb.fromGen requestHead
    static member ResponseHead() = Arb.fromGen responseHead

let strict = ParserSettings.Default

let lenient =
    { ParserSettings.Default with
        Lenience =
            {
                AllowBareLf = true
                AllowObsFoldInResponses = true
            }
    }

let ok r =
    match r with
    | Ok v -> v
    | Error e -> failwithf "expected success, got %O" e

let serializeRequest h = Serializer.requestBytes h |> ok
let serializeResponse h = Serializer.responseBytes h |> ok

/// Parses a whole request from a string (strict), expecting a complete head.
let request (s: string) =
    match Parser.parseRequestBytes strict (latin1 s) with
    | Ok(Complete(p, n)) -> Ok(p.Head, n)
    | Ok NeedMore -> failwith "unexpected NeedMore"
    | Error e -> Error e

/// Parses a whole response from a string (strict), expecting a complete head.
let response (s: string) =
    match Parser.parseResponseBytes strict (latin1 s) with
    | Ok(Complete(p, n)) -> Ok(p.Head, n)
    | Ok NeedMore -> failwith "unexpected NeedMore"
    | Error e -> Error e

/// The kind of the error, failing when there is none.
let kindOf r =
    match r with
    | Error(e: HttpError) -> e.Kind
    | Ok v -> failwithf "expected an error, got %A" v

/// Decodes a whole chunked body delivered in the given pieces (as a pipe would deliver them:
/// unconsumed bytes stay buffered and more are appended). Returns data and trailers.
let decodeChunked settings (isRequest: bool) (deliveries: byte[] list) : Result<byte[] * Headers * int, HttpError> =
    let body = ResizeArray<byte>()
    let mutable buffered = Array.empty<byte>
    let mutable decoder = ChunkedDecoder.Start
    let mutable pending = deliveries
    let mutable result = None
    let mutable steps = 0

    while result.IsNone do
        steps <- steps + 1

        match Chunked.decode settings isRequest decoder (ReadOnlySequence buffered) with
        | Error e -> result <- Some(Error e)
        | Ok step ->
            decoder <- step.Decoder

            match step.Output with
            | BodyData d -> body.AddRange(d.ToArray())
            | BodyEnd t -> result <- Some(Ok(body.ToArray(), t, buffered.Length - int step.Consumed))
            | NeedMoreData -> ()

            buffered <- buffered[int step.Consumed ..]

            match step.Output with
            | NeedMoreData ->
                match pending with
                | [] -> result <- Some(Error(HttpError.create ErrorKind.InvalidHead -1L "truncated"))
                | p :: rest ->
                    buffered <- Array.append buffered p
                    pending <- rest
            | _ -> ()

    result.Value

/// Cuts bytes into deliveries at the given positions.
let deliveries (bytes: byte[]) (cuts: int list) =
    ranges bytes cuts |> List.map (fun (a, b) -> bytes[a .. b - 1])
