/// The persistent-connection state machine: examples of Go's semantics, and FsCheck properties
/// over random interleavings of operations driven through `Connection.step`.
module HttpUtil.Core.Tests.ConnectionTests

open NUnit.Framework
open FsCheck
open FsCheck.FSharp
open FsCheck.NUnit
open HttpUtil.Core

// ---------------------------------------------------------------------------------------------
// A driver: feeds events, checks every invariant on every step, and keeps the model's view.

type Model =
    {
        State: ConnState
        /// Operations granted Proceed and not finished: phase -> slot.
        Running: Map<Phase, int>
        /// Slots whose request phase succeeded and whose answer was not asked for yet.
        Answerable: int list
        /// Last slot granted per phase.
        LastGrant: Map<Phase, int>
        /// Slots whose request phase succeeded (the only ones whose response phase may proceed).
        RequestDone: Set<int>
        /// Messages written and read, as fed.
        Written: int
        Read: int
        /// A read delivered a message that ended the connection.
        ReadEnded: bool
        /// A write was granted as the last message.
        WriteEnded: bool
        /// Close or Hijack happened.
        Stopped: bool
        /// A 100 Continue is being written for this slot.
        Continuing: int option
    }

let private fresh role =
    {
        State = Connection.create role
        Running = Map.empty
        Answerable = []
        LastGrant = Map.empty
        RequestDone = Set.empty
        Written = 0
        Read = 0
        ReadEnded = false
        WriteEnded = false
        Stopped = false
        Continuing = None
    }

let private isClient m = m.State.Role = ClientRole

let private readPhase m =
    if isClient m then ResponsePhase else RequestPhase

let private writePhase m =
    if isClient m then RequestPhase else ResponsePhase

let private fail fmt =
    Printf.kprintf (fun s -> raise (AssertionException s)) fmt

/// Checks one action against the model and applies it.
let private apply (m: Model) (action: ConnAction) =
    match action with
    | Grant(phase, slot, verdict) ->
        match m.LastGrant.TryFind phase with
        | Some last when slot <= last -> fail "%A granted slot %d after slot %d" phase slot last
        | _ -> ()

        let m =
            { m with
                LastGrant = m.LastGrant.Add(phase, slot)
            }

        match verdict with
        | Proceed ends ->
            if m.Stopped then
                fail "%A %d proceeded after Close or Hijack" phase slot

            if m.Running.ContainsKey phase then
                fail "%A %d proceeded while %d runs" phase slot m.Running[phase]

            if phase = ResponsePhase && not (m.RequestDone.Contains slot) then
                fail "the response phase of %d proceeded before its request phase succeeded" slot

            // Nothing is read after persist-EOF; a client writes nothing after it either.
            if m.ReadEnded && (phase = readPhase m || isClient m) then
                fail "%A %d proceeded after a message ended the connection" phase slot

            if m.WriteEnded && phase = RequestPhase then
                fail "%A %d proceeded after the last message was written" phase slot

            let m =
                { m with
                    Running = m.Running.Add(phase, slot)
                }

            if ends && phase = writePhase m then
                { m with WriteEnded = true }
            else
                m
        | Refuse e ->
            if m.Stopped then
                let sticky =
                    [ Connection.readError m.State; Connection.writeError m.State ]
                    |> List.exists (fun s -> s = ValueSome e)

                let documented =
                    if not (isClient m) && phase = ResponsePhase then
                        ClosedByUser
                    else
                        UseAfterClose

                if not sticky && e <> documented then
                    fail "%A %d after Close/Hijack failed with %A, not %A" phase slot e documented

            m
    | Deliver(_, isLast) -> if isLast then { m with ReadEnded = true } else m
    | SendContinue slot -> { m with Continuing = Some slot }
    | Assigned _
    | CloseTransport
    | HandOver -> m

let private feed (m: Model) (event: ConnEvent) =
    match Connection.step m.State event with
    | Error(InvalidEvent reason) -> fail "the driver fed an invalid event %A: %s" event reason
    | Error e -> Error e
    | Ok(state, actions) ->
        let m = List.fold apply { m with State = state } actions

        if Connection.pending m.State <> m.Read - m.Written && not (isClient m) then
            fail "server Pending %d but read %d written %d" (Connection.pending m.State) m.Read m.Written

        if Connection.pending m.State <> m.Written - m.Read && isClient m then
            fail "client Pending %d but written %d read %d" (Connection.pending m.State) m.Written m.Read

        if Connection.pending m.State < 0 then
            fail "Pending went negative"

        Ok(m, actions)

let private feedOk m event =
    match feed m event with
    | Ok(m, _) -> m
    | Error e -> fail "%A failed with %A" event e

/// One command of a random run; the numbers pick among what is possible at that point.
type Command =
    | StartExchange of closes: bool
    | Answer of pick: int * closes: bool
    | Finish of phase: Phase * outcome: int * closes: bool
    | Close
    | Hijack
    | WantBody of pick: int

let private finishRunning (m: Model) phase outcome closes =
    match m.Running.TryFind phase with
    | None when phase = ResponsePhase && m.Continuing.IsSome ->
        let slot = m.Continuing.Value

        let error =
            if outcome % 3 = 1 then
                ValueSome(Transport(exn "reset"))
            else
                ValueNone

        { feedOk { m with Continuing = None } (ContinueWritten(slot, error)) with
            Continuing = None
        }
    | None -> m
    | Some slot ->
        let m =
            { m with
                Running = m.Running.Remove phase
            }

        let isRead = phase = readPhase m

        match outcome % 3 with
        | 0 when isRead ->
            let m =
                { m with
                    Read = m.Read + 1
                    Answerable = (if isClient m then m.Answerable else m.Answerable @ [ slot ])
                    RequestDone = (if isClient m then m.RequestDone else m.RequestDone.Add slot)
                }

            feedOk m (HeadRead(slot, closes, (outcome % 2 = 0)))
        | 0 ->
            let m =
                { m with
                    Written = m.Written + 1
                    Answerable = (if isClient m then m.Answerable @ [ slot ] else m.Answerable)
                    RequestDone = (if isClient m then m.RequestDone.Add slot else m.RequestDone)
                }

            feedOk m (Wrote slot)
        | 1 -> feedOk m (Failed(phase, slot, Transport(exn "broken pipe")))
        | _ when isRead -> feedOk m (InputEnded(slot, int64 (outcome % 5)))
        | _ -> feedOk m (Failed(phase, slot, Malformed(HttpError.create ErrorKind.InvalidHead 0L "bad")))

let private run role (commands: Command list) =
    let step (m: Model) command =
        match command with
        | StartExchange closes ->
            let event =
                if role = ClientRole then
                    StartWriteRequest closes
                else
                    StartReadRequest

            feedOk m event
        | Answer(pick, closes) ->
            match m.Answerable with
            | [] ->
                // An answer for a request that is not pending: ErrPipeline, and nothing changes.
                match
                    feed
                        m
                        (if role = ClientRole then
                             StartReadResponse(ValueSome 999)
                         else
                             StartWriteResponse(ValueNone, closes))
                with
                | Error PipelineMismatch -> m
                | other -> fail "an unknown slot gave %A" other
            | slots ->
                let slot = slots[abs pick % slots.Length]

                let m =
                    { m with
                        Answerable = slots |> List.filter ((<>) slot)
                    }

                let event =
                    if role = ClientRole then
                        StartReadResponse(ValueSome slot)
                    else
                        StartWriteResponse(ValueSome slot, closes)

                feedOk m event
        | Finish(phase, outcome, closes) -> finishRunning m phase (abs outcome) closes
        | Close -> feedOk { m with Stopped = true } CloseRequested
        | Hijack ->
            match feed m HijackRequested with
            | Ok(m, _) -> { m with Stopped = true }
            | Error UseAfterClose when m.Stopped -> m
            | other -> fail "Hijack gave %A" other
        | WantBody pick ->
            if role = ServerRole && not m.RequestDone.IsEmpty && m.Continuing.IsNone then
                let slots = Set.toList m.RequestDone
                feedOk m (BodyWanted slots[abs pick % slots.Length])
            else
                m

    List.fold step (fresh role) commands

let private commandGen =
    Gen.frequency
        [
            4, Gen.map StartExchange (Gen.elements [ false; false; false; true ])
            4, Gen.map2 (fun p c -> Answer(p, c)) (Gen.choose (0, 1000)) (Gen.elements [ false; false; true ])
            8,
            Gen.map3
                (fun ph o c -> Finish(ph, o, c))
                (Gen.elements [ RequestPhase; ResponsePhase ])
                (Gen.choose (0, 29))
                (Gen.elements [ false; false; false; true ])
            1, Gen.constant Close
            1, Gen.constant Hijack
            1, Gen.map WantBody (Gen.choose (0, 10))
        ]

type ConnArbitraries =
    static member Commands() = Arb.fromGen (Gen.listOf commandGen)

[<Property(MaxTest = 1000, Arbitrary = [| typeof<ConnArbitraries> |])>]
let ``client: any interleaving keeps slot order, Pending, persist-EOF and Close/Hijack rules``
    (commands: Command list)
    =
    run ClientRole commands |> ignore

[<Property(MaxTest = 1000, Arbitrary = [| typeof<ConnArbitraries> |])>]
let ``server: any interleaving keeps slot order, Pending, persist-EOF and Close/Hijack rules``
    (commands: Command list)
    =
    run ServerRole commands |> ignore

[<Property(MaxTest = 500, Arbitrary = [| typeof<ConnArbitraries> |])>]
let ``after Close every operation is refused with the documented error`` (commands: Command list) (role: bool) =
    let role = if role then ClientRole else ServerRole
    let m = run role (commands @ [ Close ])
    // New operations after Close: the exchange start is refused at its turn, once earlier ones finish.
    let s = m.State

    match Connection.step s HijackRequested with
    | Error UseAfterClose -> ()
    | other -> fail "Hijack after Close gave %A" other

    match Connection.step s CloseRequested with
    | Ok(s2, []) when s2 = s -> ()
    | other -> fail "a second Close gave %A" other

// ---------------------------------------------------------------------------------------------
// Examples of Go's semantics.

let private stepOk s e =
    match Connection.step s e with
    | Ok r -> r
    | Error err -> fail "%A failed: %A" e err

let private verdictOf actions slot phase =
    actions
    |> List.pick (function
        | Grant(p, sl, v) when p = phase && sl = slot -> Some v
        | _ -> None)

[<Test>]
let ``client: a pipelined read waits for the earlier read, then runs`` () =
    let s = Connection.create ClientRole
    let s, a0 = stepOk s (StartWriteRequest false)
    Assert.That(verdictOf a0 0 RequestPhase, Is.EqualTo(Proceed false))
    let s, a1 = stepOk s (StartWriteRequest false)
    Assert.That(a1, Is.EqualTo(box [ Assigned 1 ]), "the second write waits for the first")
    let s, a = stepOk s (Wrote 0)
    Assert.That(verdictOf a 1 RequestPhase, Is.EqualTo(Proceed false))
    let s, _ = stepOk s (Wrote 1)
    Assert.That(Connection.pending s, Is.EqualTo 2)
    // Read for slot 1 first: it waits for slot 0's read.
    let s, a = stepOk s (StartReadResponse(ValueSome 1))
    Assert.That(a, Is.Empty)
    let s, a = stepOk s (StartReadResponse(ValueSome 0))
    Assert.That(verdictOf a 0 ResponsePhase, Is.EqualTo(Proceed false))
    let s, a = stepOk s (HeadRead(0, false, false))
    Assert.That(a, Does.Contain(Grant(ResponsePhase, 1, Proceed false)))
    let s, _ = stepOk s (HeadRead(1, false, false))
    Assert.That(Connection.pending s, Is.EqualTo 0)

[<Test>]
let ``client: a request with Connection close ends writes; its response is still read`` () =
    let s = Connection.create ClientRole
    let s, _ = stepOk s (StartWriteRequest true)
    let s, _ = stepOk s (Wrote 0)
    let s, a = stepOk s (StartWriteRequest false)
    Assert.That(verdictOf a 1 RequestPhase, Is.EqualTo(Refuse PersistEof))
    let s, a = stepOk s (StartReadResponse(ValueSome 0))
    Assert.That(verdictOf a 0 ResponsePhase, Is.EqualTo(Proceed false))
    let _, a = stepOk s (HeadRead(0, true, false))
    Assert.That(a, Does.Contain(Deliver(0, true)))

[<Test>]
let ``a read for an unknown request is ErrPipeline and changes nothing`` () =
    let s = Connection.create ClientRole

    Assert.That(
        Connection.step s (StartReadResponse ValueNone),
        Is.EqualTo(Error PipelineMismatch: Result<ConnState * ConnAction list, ConnError>)
    )

    let s = Connection.create ServerRole

    Assert.That(
        Connection.step s (StartWriteResponse(ValueSome 0, false)),
        Is.EqualTo(Error PipelineMismatch: Result<ConnState * ConnAction list, ConnError>)
    )

[<Test>]
let ``server: clean end of input is EndOfInput, a torn head is PersistEof`` () =
    let s = Connection.create ServerRole
    let s1, _ = stepOk s StartReadRequest
    let s1, _ = stepOk s1 (InputEnded(0, 0L))
    Assert.That(Connection.readError s1, Is.EqualTo(ValueSome EndOfInput))
    let s2, _ = stepOk s StartReadRequest
    let s2, _ = stepOk s2 (InputEnded(0, 7L))
    Assert.That(Connection.readError s2, Is.EqualTo(ValueSome PersistEof))

[<Test>]
let ``server: Go's asymmetry after Close: write gets ErrClosed, read gets errClosed`` () =
    let s = Connection.create ServerRole
    let s, _ = stepOk s StartReadRequest
    let s, _ = stepOk s (HeadRead(0, false, false))
    let s, a = stepOk s CloseRequested
    Assert.That(a, Is.EqualTo(box [ CloseTransport ]))
    let s, a = stepOk s (StartWriteResponse(ValueSome 0, false))
    Assert.That(verdictOf a 0 ResponsePhase, Is.EqualTo(Refuse ClosedByUser))
    let _, a = stepOk s StartReadRequest
    Assert.That(verdictOf a 1 RequestPhase, Is.EqualTo(Refuse UseAfterClose))

[<Test>]
let ``server: responses go out in request order whatever order they are asked for`` () =
    let mutable s = Connection.create ServerRole

    for i in 0..2 do
        let s1, _ = stepOk s StartReadRequest
        let s1, _ = stepOk s1 (HeadRead(i, false, false))
        s <- s1

    let s, a = stepOk s (StartWriteResponse(ValueSome 2, false))
    Assert.That(a, Is.Empty)
    let s, a = stepOk s (StartWriteResponse(ValueSome 1, false))
    Assert.That(a, Is.Empty)
    let s, a = stepOk s (StartWriteResponse(ValueSome 0, false))
    Assert.That(verdictOf a 0 ResponsePhase, Is.EqualTo(Proceed false))
    let s, a = stepOk s (Wrote 0)
    Assert.That(verdictOf a 1 ResponsePhase, Is.EqualTo(Proceed false))
    let s, a = stepOk s (Wrote 1)
    Assert.That(verdictOf a 2 ResponsePhase, Is.EqualTo(Proceed false))
    let s, _ = stepOk s (Wrote 2)
    Assert.That(Connection.pending s, Is.EqualTo 0)

[<Test>]
let ``server: an HTTP/1.0 request's response is the last and says so`` () =
    let s = Connection.create ServerRole
    let s, _ = stepOk s StartReadRequest
    let s, a = stepOk s (HeadRead(0, true, false))
    Assert.That(a, Does.Contain(Deliver(0, true)))
    let s, a = stepOk s (StartWriteResponse(ValueSome 0, false))
    Assert.That(verdictOf a 0 ResponsePhase, Is.EqualTo(Proceed true))
    let _, a = stepOk s StartReadRequest
    Assert.That(verdictOf a 1 RequestPhase, Is.EqualTo(Refuse PersistEof))

[<Test>]
let ``server: 100 Continue only when the response turn is the request's, and an unanswered expectation ends the connection``
    ()
    =
    let s = Connection.create ServerRole
    let s, _ = stepOk s StartReadRequest
    let s, _ = stepOk s (HeadRead(0, false, true))
    let s, _ = stepOk s StartReadRequest
    let s, _ = stepOk s (HeadRead(1, false, true))
    // Slot 1's body is wanted while slot 0 is unanswered: no 100 yet.
    let s, a = stepOk s (BodyWanted 1)
    Assert.That(a, Is.Empty)
    let s, a = stepOk s (BodyWanted 0)
    Assert.That(a, Is.EqualTo(box [ SendContinue 0 ]))
    let s, a = stepOk s (StartWriteResponse(ValueSome 0, false))
    Assert.That(a, Is.Empty, "the response waits for the 100 Continue being written")
    let s, a = stepOk s (ContinueWritten(0, ValueNone))
    Assert.That(verdictOf a 0 ResponsePhase, Is.EqualTo(Proceed false))
    let s, _ = stepOk s (Wrote 0)
    // Slot 1 is answered without 100 Continue: its response ends the connection.
    let _, a = stepOk s (StartWriteResponse(ValueSome 1, false))
    Assert.That(verdictOf a 1 ResponsePhase, Is.EqualTo(Proceed true))

[<Test>]
let ``the framing and persistence helpers`` () =
    let req v h =
        {
            Method = "GET"
            Target = "/"
            Form = Origin
            Version = v
            Headers = Headers.ofList h
        }

    Assert.That(Persist.requestCloses (req Http11 []), Is.False)
    Assert.That(Persist.requestCloses (req Http11 [ "Connection", "keep-alive, Close" ]), Is.True)
    Assert.That(Persist.requestCloses (req Http10 []), Is.True)
    Assert.That(Persist.requestCloses (req Http10 [ "Connection", "keep-alive" ]), Is.False)
    Assert.That(Continue.expects (req Http11 [ "Expect", "100-Continue" ]), Is.True)
    Assert.That(Continue.expects (req Http10 [ "Expect", "100-continue" ]), Is.False)

    let resp v h =
        {
            Version = v
            Status = 200
            Reason = "OK"
            Headers = Headers.ofList h
        }

    Assert.That(Persist.responseCloses "GET" (resp Http11 [ "Content-Length", "0" ]), Is.False)
    Assert.That(Persist.responseCloses "GET" (resp Http11 []), Is.True, "a body until close ends the connection")
    Assert.That(Persist.responseCloses "HEAD" (resp Http11 []), Is.False)
    Assert.That(Continue.isInterim 103, Is.True)
    Assert.That(Continue.isInterim 101, Is.False)

    Assert.That(Framing.planRequest Http11 "GET" Framing.Absent, Is.EqualTo(Ok Framing.NoBody: Result<_, HttpError>))

    Assert.That(
        Framing.planRequest Http11 "POST" Framing.Absent,
        Is.EqualTo(Ok(Framing.ContentLength 0L): Result<_, HttpError>)
    )

    Assert.That(Framing.planRequest Http11 "POST" Framing.Unknown, Is.EqualTo(Ok Framing.Chunked: Result<_, HttpError>))
    Assert.That((Framing.planRequest Http10 "POST" Framing.Unknown).IsError, Is.True)

    Assert.That(
        Framing.planResponse "GET" Http10 Http11 200 Framing.Unknown,
        Is.EqualTo(struct (Framing.UntilClose, true))
    )

    Assert.That(
        Framing.planResponse "HEAD" Http11 Http11 200 (Framing.Known 5L),
        Is.EqualTo(struct (Framing.NoBody, false))
    )
