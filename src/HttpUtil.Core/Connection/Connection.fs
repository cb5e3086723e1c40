namespace HttpUtil.Core

// One HTTP/1.x connection, either role, as a pure state machine: `Connection.step` takes the
// state and an event the I/O shell reports and returns the new state and the actions the shell
// must carry out. It composes three smaller machines:
//
//   Pipeline.fs  turn-taking: each exchange holds one ticket ("slot") in two lanes, requests and
//                responses; each lane runs its tickets in order, one at a time.
//   Persist.fs   the reading and writing sides (Open | Ended | Broken e) and the connection's
//                life (Live | Closed | Hijacked): which operations are refused, and with what.
//   Continue.fs  `100 Continue`: when a server sends it, when a client waits for it.
//
// What each event does (client / server where they differ):
//
//   event                 lane effect                    side effect
//   StartWriteRequest c   new slot; request lane asks    (client) when granted and c: writing Ended
//   StartReadRequest      new slot; request lane asks    -
//   StartReadResponse s   response lane asks for s       -
//   StartWriteResponse    response lane asks for s       (server) when granted and the message is the
//     (s, c)                                             last (c, its request closed, or it still
//                                                        awaits 100 Continue): reading Ended
//   Wrote s               the writing lane advances      -
//   HeadRead (s, c, x)    the reading lane advances      c: reading Ended; (server) x: awaits 100
//   InputEnded (s, n)     the reading lane advances      reading Broken (end of input, or torn head)
//   Failed (p, s, e)      lane p advances                the side of p Broken e
//   BodyFailed e          -                              reading Broken e
//   SendFailed e          -                              writing Broken e
//   BodyWanted s          (server) response lane runs    -   and SendContinue s when allowed
//   ContinueWritten s     (server) response lane pauses  failure: writing Broken e
//   StopWriting           -                              (client) writing Ended
//   CloseRequested        waiting operations refused     life Closed; CloseTransport
//   HijackRequested       waiting operations refused     life Hijacked; HandOver
//
// A request phase that ends without a message passes its slot over in the response lane.

/// Whether a granted operation may touch the wire.
type Verdict =
    /// Go ahead. `EndsConnection`: the message this operation writes is the last one and must
    /// say so (`Connection: close`); for reads it is always false.
    | Proceed of EndsConnection: bool
    /// Do not touch the wire; fail with this error. The operation is already over.
    | Refuse of Error: ConnError

/// What the shell must do after a step.
type ConnAction =
    /// The operation of `slot` in `phase` now has its turn, with this verdict.
    | Grant of Phase: Phase * Slot: int * Verdict: Verdict
    /// A new exchange got this slot (answer to starting a client write or a server read).
    | Assigned of Slot: int
    /// A message was read; `IsLast`: it ended the connection logically (persist-EOF), so the
    /// caller gets it together with that news and the next read fails.
    | Deliver of Slot: int * IsLast: bool
    /// Write `100 Continue` now for the request of `slot`, then feed `ContinueWritten`.
    | SendContinue of Slot: int
    /// Close the transport (the stream).
    | CloseTransport
    /// Hand the transport and any buffered input to the caller.
    | HandOver

/// What happened on a connection, as the shell reports it.
type ConnEvent =
    /// Client: a request write was asked for; `closes`: the request ends the connection.
    | StartWriteRequest of Closes: bool
    /// Client: a response read was asked for, for the request of this slot (none: unknown request).
    | StartReadResponse of ForSlot: int voption
    /// Server: a request read was asked for.
    | StartReadRequest
    /// Server: a response write was asked for, for the request of this slot (none: unknown
    /// request); `closes`: the response ends the connection.
    | StartWriteResponse of ForSlot: int voption * Closes: bool
    /// The granted write of `slot` finished.
    | Wrote of Slot: int
    /// A head was read for `slot`. `closes`: the message ends the connection; `expectsContinue`:
    /// a request that waits for `100 Continue`.
    | HeadRead of Slot: int * Closes: bool * ExpectsContinue: bool
    /// The granted operation of `slot` in `phase` failed.
    | Failed of Phase: Phase * Slot: int * Error: ConnError
    /// The input ended while reading a head for `slot`, after `buffered` bytes of it.
    | InputEnded of Slot: int * Buffered: int64
    /// A body read from the connection failed; the read side is broken.
    | BodyFailed of Error: ConnError
    /// Sending bytes already handed over by earlier writes failed; the write side is broken, and
    /// later writes meet this error instead of a failure of their own.
    | SendFailed of Error: ConnError
    /// Server: the handler started reading the body of the request of `slot`.
    | BodyWanted of Slot: int
    /// Server: the `100 Continue` for `slot` was written (or failed, with the error).
    | ContinueWritten of Slot: int * Error: ConnError voption
    /// Client: the request just written went without its body (the server answered before
    /// `100 Continue`), so the connection cannot carry another request.
    | StopWriting
    /// The user closed the connection.
    | CloseRequested
    /// The user took the connection over.
    | HijackRequested

/// The parts of a connection's state that change seldom (once per connection, on a failure, or for
/// `100 Continue`): kept in a record of their own, so that the copy every step makes of
/// `ConnState` stays small.
type ConnSides =
    {
        /// Which end this is.
        Role: Role
        /// The reading side.
        Reading: Side
        /// The writing side.
        Writing: Side
        /// Live, closed or hijacked.
        Life: Life
        /// Server: slots whose request waits for a `100 Continue` that was not sent.
        AwaitingContinue: Set<int>
        /// Server: the slot of the request that ended the connection, whose response is the last.
        LastSlot: int voption
    }

/// The state of one HTTP/1.x connection, in either role. Immutable: `Connection.step` returns
/// a new state. Slots are numbered from 0 in the order exchanges start.
type ConnState =
    {
        /// The slot the next exchange gets.
        NextSlot: int
        /// Turn-taking of request phases (client writes, server reads).
        Requests: Lane
        /// Turn-taking of response phases (client reads, server writes; a server's `100 Continue`
        /// runs in the response turn of its request).
        Responses: Lane
        /// Slots whose request phase succeeded and whose answer was not asked for yet (Go's
        /// pipereq map).
        Outstanding: Set<int>
        /// Messages read.
        ReadCount: int
        /// Messages written.
        WriteCount: int
        /// The sides, the life and the rest that change seldom.
        Sides: ConnSides
    }

    /// Which end this is.
    member s.Role = s.Sides.Role
    /// The reading side.
    member s.Reading = s.Sides.Reading
    /// The writing side.
    member s.Writing = s.Sides.Writing
    /// Live, closed or hijacked.
    member s.Life = s.Sides.Life
    /// Server: slots whose request waits for a `100 Continue` that was not sent.
    member s.AwaitingContinue = s.Sides.AwaitingContinue
    /// Server: the slot of the request that ended the connection, whose response is the last.
    member s.LastSlot = s.Sides.LastSlot

/// The persistent-connection state machine of Go's httputil ClientConn and ServerConn, with no
/// I/O (see the table at the top of this file).
module Connection =
    /// A new connection in `role`.
    let create role =
        {
            NextSlot = 0
            Requests = Pipeline.empty
            Responses = Pipeline.empty
            Outstanding = Set.empty
            ReadCount = 0
            WriteCount = 0
            Sides =
                {
                    Role = role
                    Reading = Open
                    Writing = Open
                    Life = Live
                    AwaitingContinue = Set.empty
                    LastSlot = ValueNone
                }
        }

    /// Unanswered requests: written minus read (client), read minus written (server).
    let pending (s: ConnState) =
        match s.Role with
        | ClientRole -> s.WriteCount - s.ReadCount
        | ServerRole -> s.ReadCount - s.WriteCount

    /// The error the next read meets because of the reading side; none while it is open.
    let readError (s: ConnState) = Persist.refusalOf s.Reading

    /// The error the next write meets because of the writing side; none while it is open.
    let writeError (s: ConnState) = Persist.refusalOf s.Writing

    let private lane phase (s: ConnState) =
        match phase with
        | RequestPhase -> s.Requests
        | ResponsePhase -> s.Responses

    let private withLane phase (l: Lane) (s: ConnState) =
        match phase with
        | RequestPhase -> { s with Requests = l }
        | ResponsePhase -> { s with Responses = l }

    let private onSide direction event (s: ConnState) =
        match direction with
        | Reading ->
            { s with
                Sides =
                    { s.Sides with
                        Reading = Persist.next s.Reading event
                    }
            }
        | Writing ->
            { s with
                Sides =
                    { s.Sides with
                        Writing = Persist.next s.Writing event
                    }
            }

    /// The operation of `slot` in `phase` is over without a message: its lane moves on, and a
    /// request phase's slot is passed over in the response lane.
    let private over phase slot (s: ConnState) =
        match phase with
        | RequestPhase ->
            { s with
                Requests = Pipeline.advance s.Requests
                Responses = Pipeline.passOver slot s.Responses
            }
        | ResponsePhase ->
            { s with
                Responses = Pipeline.advance s.Responses
            }

    let private proceedEnding = Proceed true
    let private proceedPlain = Proceed false

    /// Whether the message this granted operation writes is the last one.
    let private endsConnection phase slot closes (s: ConnState) =
        match s.Role, phase with
        | ClientRole, RequestPhase -> closes
        | ServerRole, ResponsePhase ->
            closes
            || s.LastSlot = ValueSome slot
            || Continue.answerEnds slot s.AwaitingContinue
        | _ -> false

    /// The turn of `slot` in `phase` has come: refuse it (it is over) or let it run.
    let private grant phase slot closes (s: ConnState) =
        match Persist.refusal s.Role phase s.Reading s.Writing s.Life with
        | ValueSome e -> struct (over phase slot s, Refuse e)
        | ValueNone ->
            if endsConnection phase slot closes s then
                let s = withLane phase (Pipeline.start (lane phase s)) s
                struct (onSide (Persist.endedByLastWrite s.Role) LastMessage s, proceedEnding)
            else
                struct (withLane phase (Pipeline.start (lane phase s)) s, proceedPlain)

    /// `acc` (built newest first) in order; a list of one or none is its own reverse.
    let private inOrder (acc: ConnAction list) =
        match acc with
        | []
        | [ _ ] -> acc
        | _ -> List.rev acc

    /// Grants every waiting operation whose turn has come, requests first, until none is left.
    /// (States and actions travel as struct pairs inside this module: no tuple per step.)
    let rec private pump s acc =
        match Pipeline.tryNext s.Requests with
        | ValueSome(struct (slot, closes, l)) ->
            let struct (s, verdict) = grant RequestPhase slot closes { s with Requests = l }
            pump s (Grant(RequestPhase, slot, verdict) :: acc)
        | ValueNone ->
            match Pipeline.tryNext s.Responses with
            | ValueSome(struct (slot, closes, l)) ->
                let struct (s, verdict) = grant ResponsePhase slot closes { s with Responses = l }
                pump s (Grant(ResponsePhase, slot, verdict) :: acc)
            | ValueNone -> struct (s, inOrder acc)

    /// An operation asks for its turn: granted at once when the lane is free at its slot (the
    /// usual case), else it waits.
    let private arrive phase slot closes s acc =
        let l = lane phase s

        if Pipeline.isFree slot l then
            let struct (s, verdict) = grant phase slot closes s
            pump s (Grant(phase, slot, verdict) :: acc)
        else
            pump (withLane phase (Pipeline.wait slot closes l) s) acc

    let private invalid reason = Result.Error(InvalidEvent reason)

    /// True when an operation arriving now in `phase` for `slot` takes the usual way: its lane is
    /// free at its slot, nothing refuses it, and its message does not end the connection. Its step
    /// then only starts the lane (no other waiter can be granted by that: `pump` ran after the last
    /// step), so the new state is built in one record copy: the two busiest events (a client
    /// writing a request and reading its response) take this way for nearly every exchange.
    let private usual phase slot closes (s: ConnState) =
        Pipeline.isFree slot (lane phase s)
        && (Persist.refusal s.Role phase s.Reading s.Writing s.Life).IsNone
        && not (endsConnection phase slot closes s)

    let private startExchange closes (s: ConnState) =
        let slot = s.NextSlot

        if usual RequestPhase slot closes s then
            Ok(
                struct ({ s with
                            NextSlot = slot + 1
                            Requests = Pipeline.start s.Requests
                        },
                        [ Assigned slot; Grant(RequestPhase, slot, proceedPlain) ])
            )
        else
            Ok(arrive RequestPhase slot closes { s with NextSlot = slot + 1 } [ Assigned slot ])

    let private startAnswer (forSlot: int voption) closes (s: ConnState) =
        match forSlot with
        | ValueSome slot when s.Outstanding.Contains slot && usual ResponsePhase slot closes s ->
            Ok(
                struct ({ s with
                            Outstanding = s.Outstanding.Remove slot
                            Responses = Pipeline.start s.Responses
                        },
                        [ Grant(ResponsePhase, slot, proceedPlain) ])
            )
        | ValueSome slot when s.Outstanding.Contains slot ->
            Ok(
                arrive
                    ResponsePhase
                    slot
                    closes
                    { s with
                        Outstanding = s.Outstanding.Remove slot
                    }
                    []
            )
        | _ -> Result.Error PipelineMismatch

    /// The phase in which this role reads, and the one in which it writes.
    let private readPhase (s: ConnState) =
        match s.Role with
        | ClientRole -> ResponsePhase
        | ServerRole -> RequestPhase

    let private writePhase (s: ConnState) =
        match s.Role with
        | ClientRole -> RequestPhase
        | ServerRole -> ResponsePhase

    /// The lane of `phase` with the running operation of `slot` done, or none when that operation
    /// is not the one running (the shell fed an event that does not fit).
    let private done' phase slot (s: ConnState) =
        let l = lane phase s

        if Pipeline.isRunning slot l then
            ValueSome(Pipeline.advance l)
        else
            ValueNone

    // The two most frequent events build their new state in one record copy.

    let private wrote slot (s: ConnState) =
        match s.Role, done' (writePhase s) slot s with
        | _, ValueNone -> invalid (sprintf "Wrote %d while that write is not running" slot)
        | ClientRole, ValueSome l ->
            Ok(
                pump
                    { s with
                        Requests = l
                        WriteCount = s.WriteCount + 1
                        Outstanding = s.Outstanding.Add slot
                    }
                    []
            )
        | ServerRole, ValueSome l ->
            Ok(
                pump
                    { s with
                        Responses = l
                        WriteCount = s.WriteCount + 1
                        Sides =
                            (if s.AwaitingContinue.IsEmpty then
                                 s.Sides
                             else
                                 { s.Sides with
                                     AwaitingContinue = s.AwaitingContinue.Remove slot
                                 })
                    }
                    []
            )

    let private headRead slot closes expects (s: ConnState) =
        let reading =
            if closes then
                Persist.next s.Reading LastMessage
            else
                s.Reading

        let next =
            match s.Role, done' (readPhase s) slot s with
            | _, ValueNone -> ValueNone
            | ClientRole, ValueSome l ->
                ValueSome
                    { s with
                        Responses = l
                        ReadCount = s.ReadCount + 1
                        Sides =
                            (if closes then
                                 { s.Sides with Reading = reading }
                             else
                                 s.Sides)
                    }
            | ServerRole, ValueSome l ->
                ValueSome
                    { s with
                        Requests = l
                        ReadCount = s.ReadCount + 1
                        Outstanding = s.Outstanding.Add slot
                        Sides =
                            (if closes || expects then
                                 { s.Sides with
                                     Reading = reading
                                     AwaitingContinue =
                                         (if expects then
                                              s.AwaitingContinue.Add slot
                                          else
                                              s.AwaitingContinue)
                                     LastSlot = (if closes then ValueSome slot else s.LastSlot)
                                 }
                             else
                                 s.Sides)
                    }

        match next with
        | ValueNone -> invalid (sprintf "HeadRead %d while that read is not running" slot)
        | ValueSome s ->
            let struct (s, actions) = pump s []
            Ok(struct (s, Deliver(slot, closes) :: actions))

    let private failed phase slot error (s: ConnState) =
        if not (Pipeline.isRunning slot (lane phase s)) then
            invalid (sprintf "%A %d ended while that operation is not running" phase slot)
        else
            let s = onSide (Persist.direction s.Role phase) (Failure error) (over phase slot s)
            Ok(pump s [])

    let private bodyWanted slot (s: ConnState) =
        if Continue.serverMaySend slot s.AwaitingContinue s.Responses s.Writing s.Life then
            Ok(
                struct ({ s with
                            Responses = Pipeline.start s.Responses
                            Sides =
                                { s.Sides with
                                    AwaitingContinue = s.AwaitingContinue.Remove slot
                                }
                        },
                        [ SendContinue slot ])
            )
        else
            Ok(struct (s, []))

    let private continueWritten slot error (s: ConnState) =
        if not (Pipeline.isRunning slot s.Responses) then
            invalid (sprintf "ContinueWritten %d while no 100 Continue is being written" slot)
        else
            let s =
                { s with
                    Responses = Pipeline.pause s.Responses
                }

            let s =
                match error with
                | ValueSome e -> onSide Writing (Failure e) s
                | ValueNone -> s

            Ok(pump s [])

    let private stop life action (s: ConnState) =
        match s.Life with
        | Live ->
            let struct (s, actions) =
                pump
                    { s with
                        Sides = { s.Sides with Life = life }
                    }
                    []

            Ok(struct (s, action :: actions))
        | Closed
        | Hijacked ->
            match life with
            | Closed -> Ok(struct (s, []))
            | _ -> Result.Error UseAfterClose

    /// `step` with the state and actions as a struct pair (what the I/O shell calls: no tuple
    /// object per transition).
    let stepValue (s: ConnState) (event: ConnEvent) : Result<struct (ConnState * ConnAction list), ConnError> =
        match event, s.Role with
        | StartWriteRequest closes, ClientRole -> startExchange closes s
        | StartReadRequest, ServerRole -> startExchange false s
        | StartReadResponse forSlot, ClientRole -> startAnswer forSlot false s
        | StartWriteResponse(forSlot, closes), ServerRole -> startAnswer forSlot closes s
        | Wrote slot, _ -> wrote slot s
        | HeadRead(slot, closes, expects), _ -> headRead slot closes expects s
        | InputEnded(slot, buffered), _ -> failed (readPhase s) slot (Persist.inputEnded s.Role buffered) s
        | Failed(phase, slot, error), _ -> failed phase slot error s
        | BodyFailed error, _ -> Ok(struct (onSide Reading (Failure error) s, []))
        | SendFailed error, _ -> Ok(struct (onSide Writing (Failure error) s, []))
        | BodyWanted slot, ServerRole -> bodyWanted slot s
        | ContinueWritten(slot, error), ServerRole -> continueWritten slot error s
        | StopWriting, ClientRole -> Ok(struct (onSide Writing LastMessage s, []))
        | CloseRequested, _ -> stop Closed CloseTransport s
        | HijackRequested, _ -> stop Hijacked HandOver s
        | _, role -> invalid (sprintf "%A does not apply to the %A" event role)

    /// One transition: the new state and what the shell must do, or an error for an operation
    /// that cannot even be queued (`PipelineMismatch`, `UseAfterClose` for a second Hijack) or
    /// an event that does not fit the state (`InvalidEvent`).
    let step (s: ConnState) (event: ConnEvent) : Result<ConnState * ConnAction list, ConnError> =
        match stepValue s event with
        | Ok(struct (s, actions)) -> Ok(s, actions)
        | Result.Error e -> Result.Error e

    /// True when the connection may carry another exchange right away: every request answered,
    /// nothing running or waiting, both sides open, still live. A transport puts a connection
    /// back in its idle pool only then (and once the last body was read to its end).
    let reusable (s: ConnState) =
        pending s = 0
        && Pipeline.isIdle s.Requests
        && Pipeline.isIdle s.Responses
        && s.Reading = Open
        && s.Writing = Open
        && s.Life = Live

    /// Client: true when the request of `slot` may wait for `100 Continue` before its body (see
    /// `Continue.clientMayWait`).
    let mayAwaitContinue (slot: int) (s: ConnState) =
        s.Role = ClientRole && Continue.clientMayWait slot s.Responses
