namespace HttpUtil.Core

/// Which end of an HTTP/1.x connection a state machine plays.
type Role =
    /// Writes requests, reads responses (Go's ClientConn).
    | ClientRole
    /// Reads requests, writes responses (Go's ServerConn).
    | ServerRole

/// The two halves of each exchange. Every exchange owns one slot; each half runs in slot order.
type Phase =
    /// Client: writing the request. Server: reading the request.
    | RequestPhase
    /// Client: reading the response. Server: writing the response.
    | ResponsePhase

/// Why an operation on a connection cannot go on. Read-side and write-side errors are sticky:
/// once set, every later operation that checks that side fails with the same value.
type ConnError =
    /// The connection has ended logically: a `Connection: close` or HTTP/1.0 message went by
    /// (Go's ErrPersistEOF), or the peer closed it in the middle of a head (server side).
    | PersistEof
    /// A server response written after `Close` or `Hijack` (Go's ErrClosed).
    | ClosedByUser
    /// Any other operation after `Close` or `Hijack` (Go's unexported errClosed).
    | UseAfterClose
    /// A response read (client) or written (server) for a request this connection never wrote
    /// or read, or already answered (Go's ErrPipeline).
    | PipelineMismatch
    /// The peer ended the input cleanly where a new message would start (Go's io.EOF).
    | EndOfInput
    /// The bytes on the wire break HTTP/1.x (or a limit): the error says what and where.
    | Malformed of Error: HttpError
    /// The transport failed; the shell's exception, carried as is.
    | Transport of Cause: exn
    /// The unread rest of the previous body was larger than the drain limit (in bytes).
    | DrainLimit of Limit: int64
    /// The shell fed an event that does not fit the current state (a bug in the caller).
    | InvalidEvent of Reason: string

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

/// The state of one HTTP/1.x connection, in either role. Immutable: `Connection.step` returns
/// a new state. Slots are numbered from 0 in the order exchanges start.
type ConnState =
    {
        /// Which end this is.
        Role: Role
        /// The slot the next exchange gets.
        NextSlot: int
        /// The slot whose request phase runs next (or runs now, when `RequestRunning`).
        RequestTurn: int
        /// True while the request phase of `RequestTurn` runs.
        RequestRunning: bool
        /// The slot whose response phase runs next (or runs now, when `ResponseRunning`).
        ResponseTurn: int
        /// True while the response phase of `ResponseTurn` runs (or a `100 Continue` is written).
        ResponseRunning: bool
        /// Request-phase operations asked for but not yet granted: slot to "ends the connection".
        RequestQueue: Map<int, bool>
        /// Response-phase operations asked for but not yet granted: slot to "ends the connection".
        ResponseQueue: Map<int, bool>
        /// Slots whose response phase will never run (their request phase failed).
        Skipped: Set<int>
        /// Slots whose request phase succeeded and whose response phase was not asked for yet.
        Outstanding: Set<int>
        /// Server: slots whose request waits for `100 Continue` that was not sent.
        AwaitingContinue: Set<int>
        /// Server: the slot whose response is the last one (its request ended the connection).
        LastSlot: int voption
        /// Messages read.
        ReadCount: int
        /// Messages written.
        WriteCount: int
        /// The sticky read-side error.
        ReadError: ConnError voption
        /// The sticky write-side error.
        WriteError: ConnError voption
        /// `Close` was called.
        Closed: bool
        /// `Hijack` was called.
        Hijacked: bool
    }

/// The persistent-connection state machine of Go's httputil ClientConn and ServerConn, with no
/// I/O: reads and writes run in slot order, errors stick to their side, persist-EOF ends the
/// connection after the messages in flight, and Close or Hijack end it at once.
module Connection =
    /// A new connection in `role`.
    let create role =
        {
            Role = role
            NextSlot = 0
            RequestTurn = 0
            RequestRunning = false
            ResponseTurn = 0
            ResponseRunning = false
            RequestQueue = Map.empty
            ResponseQueue = Map.empty
            Skipped = Set.empty
            Outstanding = Set.empty
            AwaitingContinue = Set.empty
            LastSlot = ValueNone
            ReadCount = 0
            WriteCount = 0
            ReadError = ValueNone
            WriteError = ValueNone
            Closed = false
            Hijacked = false
        }

    /// Unanswered requests: written minus read (client), read minus written (server).
    let pending s =
        match s.Role with
        | ClientRole -> s.WriteCount - s.ReadCount
        | ServerRole -> s.ReadCount - s.WriteCount

    /// The version rule for ending a connection (RFC 9112 section 9.3): HTTP/1.1 ends it with
    /// `Connection: close`, HTTP/1.0 unless `Connection: keep-alive`.
    let private closesByVersion (version: HttpVersion) (headers: Headers) =
        match version with
        | Http11 -> Headers.hasConnectionToken "close" headers
        | Http10 -> not (Headers.hasConnectionToken "keep-alive" headers)

    /// True when the request of this head ends the connection: `Connection: close`, or HTTP/1.0
    /// without `Connection: keep-alive` (RFC 9112 section 9.3).
    let requestCloses (head: RequestHead) =
        closesByVersion head.Version head.Headers

    /// True when a response whose body is framed as `body` ends the connection: as for requests, or
    /// when its body runs until the connection closes. For callers that have the framing already.
    let responseClosesWith (head: ResponseHead) (body: Framing.BodyLength) =
        closesByVersion head.Version head.Headers
        || (match body with
            | Framing.UntilClose -> true
            | _ -> false)

    /// True when a response to `requestMethod` ends the connection (`responseClosesWith` with the
    /// framing worked out here; a response whose framing is invalid is judged by its version alone).
    let responseCloses (requestMethod: string) (head: ResponseHead) =
        match Framing.responseBody requestMethod head with
        | Ok body -> responseClosesWith head body
        | Error _ -> closesByVersion head.Version head.Headers

    /// True for an interim response a client reads past on its way to the final one: 1xx except
    /// 101 Switching Protocols, which is final (RFC 9110 section 15.2).
    let isInterim (status: int) =
        status >= 100 && status < 200 && status <> 101

    /// `headers` saying that this message is the last on its connection: `Connection: close` added
    /// unless a Connection field already lists close.
    let markLast (headers: Headers) =
        if Headers.hasConnectionToken "close" headers then
            headers
        else
            Headers.add "Connection" "close" headers

    /// True when an HTTP/1.1 request waits for `100 Continue` before sending its body (RFC 9110
    /// section 10.1.1).
    let expectsContinue (head: RequestHead) =
        head.Version = Http11
        && (match Headers.tryGet "Expect" head.Headers with
            | Some v ->
                System.String.Equals(v.Trim(' ', '\t'), "100-continue", System.StringComparison.OrdinalIgnoreCase)
            | None -> false)

    let private isClient s = s.Role = ClientRole

    let private stopped s = s.Closed || s.Hijacked

    let private proceedEnding = Proceed true
    let private proceedPlain = Proceed false

    let private proceed ends =
        if ends then proceedEnding else proceedPlain

    /// The sticky error an operation meets. Go checks the sides in this order: a client write
    /// looks at the read side first, a server read at the write side first; reads of the client
    /// and writes of the server look at one side only.
    let private stickyError (s: ConnState) (phase: Phase) =
        match s.Role, phase with
        | ClientRole, RequestPhase -> if s.ReadError.IsSome then s.ReadError else s.WriteError
        | ClientRole, ResponsePhase -> s.ReadError
        | ServerRole, RequestPhase -> if s.WriteError.IsSome then s.WriteError else s.ReadError
        | ServerRole, ResponsePhase -> s.WriteError

    let private isLastSlot (s: ConnState) slot =
        match s.LastSlot with
        | ValueSome last -> last = slot
        | ValueNone -> false

    /// The queued operation of `slot` in `phase` ends without running.
    let private over (s: ConnState) (phase: Phase) (slot: int) =
        match phase with
        | RequestPhase ->
            { s with
                RequestTurn = s.RequestTurn + 1
                Skipped = s.Skipped.Add slot
            }
        | ResponsePhase ->
            { s with
                ResponseTurn = s.ResponseTurn + 1
            }

    /// Grants the queued operation of `slot` in `phase` (its turn has come): the verdict, and the
    /// state with the operation running (Proceed) or over (Refuse; a refused request phase also
    /// skips its response phase).
    let private grant (s: ConnState) (phase: Phase) (slot: int) (closes: bool) =
        match stickyError s phase with
        | ValueSome e -> struct (over s phase slot, Refuse e)
        | ValueNone when stopped s ->
            let afterClose =
                if phase = ResponsePhase && s.Role = ServerRole then
                    ClosedByUser
                else
                    UseAfterClose

            struct (over s phase slot, Refuse afterClose)
        | ValueNone ->
            match s.Role, phase with
            | ClientRole, RequestPhase ->
                struct ({ s with
                            RequestRunning = true
                            WriteError = (if closes then ValueSome PersistEof else s.WriteError)
                        },
                        proceed closes)
            | ServerRole, ResponsePhase ->
                let ends = closes || isLastSlot s slot || s.AwaitingContinue.Contains slot

                struct ({ s with
                            ResponseRunning = true
                            ReadError = (if ends then ValueSome PersistEof else s.ReadError)
                        },
                        proceed ends)
            | _, RequestPhase -> struct ({ s with RequestRunning = true }, proceedPlain)
            | _, ResponsePhase -> struct ({ s with ResponseRunning = true }, proceedPlain)

    let private turn phase s =
        match phase with
        | RequestPhase -> s.RequestTurn
        | ResponsePhase -> s.ResponseTurn

    let private running phase s =
        match phase with
        | RequestPhase -> s.RequestRunning
        | ResponsePhase -> s.ResponseRunning

    /// Ends the operation of the current turn in `phase` and moves the turn on.
    let private finish phase s =
        match phase with
        | RequestPhase ->
            { s with
                RequestTurn = s.RequestTurn + 1
                RequestRunning = false
            }
        | ResponsePhase ->
            { s with
                ResponseTurn = s.ResponseTurn + 1
                ResponseRunning = false
            }

    /// A request phase that ends without a message: its response phase will never run.
    let private skipResponse slot s = { s with Skipped = s.Skipped.Add slot }

    let private queued phase slot (s: ConnState) =
        match phase with
        | RequestPhase -> s.RequestQueue.TryFind slot
        | ResponsePhase -> s.ResponseQueue.TryFind slot

    /// Grants every operation whose turn has come, in order, until nothing changes.
    let rec private pump (s: ConnState) (acc: ConnAction list) =
        if
            not s.ResponseRunning
            && not s.Skipped.IsEmpty
            && s.Skipped.Contains s.ResponseTurn
        then
            pump
                { s with
                    ResponseTurn = s.ResponseTurn + 1
                    Skipped = s.Skipped.Remove s.ResponseTurn
                }
                acc
        else
            let phase, slot, closes =
                match
                    (if s.RequestRunning || s.RequestQueue.IsEmpty then
                         None
                     else
                         queued RequestPhase s.RequestTurn s)
                with
                | Some closes -> RequestPhase, s.RequestTurn, Some closes
                | None ->
                    if s.ResponseRunning || s.ResponseQueue.IsEmpty then
                        ResponsePhase, 0, None
                    else
                        ResponsePhase, s.ResponseTurn, queued ResponsePhase s.ResponseTurn s

            match closes with
            | None -> s, List.rev acc
            | Some closes ->
                let s =
                    match phase with
                    | RequestPhase ->
                        { s with
                            RequestQueue = s.RequestQueue.Remove slot
                        }
                    | ResponsePhase ->
                        { s with
                            ResponseQueue = s.ResponseQueue.Remove slot
                        }

                let struct (s, verdict) = grant s phase slot closes
                pump s (Grant(phase, slot, verdict) :: acc)

    let private invalid reason = Result.Error(InvalidEvent reason)

    let private queue phase slot closes s =
        match phase with
        | RequestPhase ->
            { s with
                RequestQueue = s.RequestQueue.Add(slot, closes)
            }
        | ResponsePhase ->
            { s with
                ResponseQueue = s.ResponseQueue.Add(slot, closes)
            }

    /// Checks that `slot`'s operation in `phase` is the one running.
    let private isRunning phase slot s = running phase s && turn phase s = slot

    /// Queues an operation, or grants it at once when its turn has come and its phase is free
    /// (the usual case, without touching the queues).
    let private arrive phase slot closes (s: ConnState) (acc: ConnAction list) =
        if not (running phase s) && turn phase s = slot then
            let struct (s, verdict) = grant s phase slot closes
            pump s (Grant(phase, slot, verdict) :: acc)
        else
            pump (queue phase slot closes s) acc

    let private startExchange closes (s: ConnState) =
        let slot = s.NextSlot

        let s, actions =
            arrive RequestPhase slot closes { s with NextSlot = slot + 1 } [ Assigned slot ]

        Ok(s, actions)

    let private startAnswer (forSlot: int voption) closes (s: ConnState) =
        match forSlot with
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

    let private readEnded slot s =
        let phase = if isClient s then ResponsePhase else RequestPhase
        phase, isRunning phase slot s

    /// One transition: the new state and what the shell must do, or an error for an operation
    /// that cannot even be queued (`PipelineMismatch`, `UseAfterClose` for a second Hijack) or
    /// an event that does not fit the state (`InvalidEvent`).
    let step (s: ConnState) (event: ConnEvent) : Result<ConnState * ConnAction list, ConnError> =
        match event, s.Role with
        | StartWriteRequest closes, ClientRole -> startExchange closes s
        | StartReadRequest, ServerRole -> startExchange false s
        | StartReadResponse forSlot, ClientRole -> startAnswer forSlot false s
        | StartWriteResponse(forSlot, closes), ServerRole -> startAnswer forSlot closes s
        | Wrote slot, _ ->
            let phase = if isClient s then RequestPhase else ResponsePhase

            if not (isRunning phase slot s) then
                invalid (sprintf "Wrote %d while that write is not running" slot)
            else
                let s =
                    match phase with
                    | RequestPhase ->
                        { s with
                            RequestTurn = s.RequestTurn + 1
                            RequestRunning = false
                            WriteCount = s.WriteCount + 1
                            Outstanding = s.Outstanding.Add slot
                        }
                    | ResponsePhase ->
                        { s with
                            ResponseTurn = s.ResponseTurn + 1
                            ResponseRunning = false
                            WriteCount = s.WriteCount + 1
                            AwaitingContinue =
                                (if s.AwaitingContinue.IsEmpty then
                                     s.AwaitingContinue
                                 else
                                     s.AwaitingContinue.Remove slot)
                        }

                Ok(pump s [])
        | HeadRead(slot, closes, expects), _ ->
            match readEnded slot s with
            | _, false -> invalid (sprintf "HeadRead %d while that read is not running" slot)
            | phase, true ->
                let s =
                    match phase with
                    | RequestPhase ->
                        { s with
                            RequestTurn = s.RequestTurn + 1
                            RequestRunning = false
                            ReadCount = s.ReadCount + 1
                            ReadError = (if closes then ValueSome PersistEof else s.ReadError)
                        }
                    | ResponsePhase ->
                        { s with
                            ResponseTurn = s.ResponseTurn + 1
                            ResponseRunning = false
                            ReadCount = s.ReadCount + 1
                            ReadError = (if closes then ValueSome PersistEof else s.ReadError)
                        }

                let s =
                    if isClient s then
                        s
                    else
                        { s with
                            Outstanding = s.Outstanding.Add slot
                            AwaitingContinue =
                                (if expects then
                                     s.AwaitingContinue.Add slot
                                 else
                                     s.AwaitingContinue)
                            LastSlot = (if closes then ValueSome slot else s.LastSlot)
                        }

                let s, actions = pump s []
                Ok(s, Deliver(slot, closes) :: actions)
        | InputEnded(slot, buffered), _ ->
            match readEnded slot s with
            | _, false -> invalid (sprintf "InputEnded %d while that read is not running" slot)
            | phase, true ->
                let error =
                    if buffered = 0L then
                        EndOfInput
                    elif isClient s then
                        Malformed(
                            HttpError.create
                                ErrorKind.UnexpectedEnd
                                buffered
                                (sprintf "the connection ended after %d bytes of a response head" buffered)
                        )
                    else
                        // Go treats a close in the middle of a request head as a graceful close.
                        PersistEof

                let s =
                    { finish phase s with
                        ReadError = ValueSome error
                    }

                let s = if phase = RequestPhase then skipResponse slot s else s
                Ok(pump s [])
        | Failed(phase, slot, error), _ ->
            if not (isRunning phase slot s) then
                invalid (sprintf "Failed %A %d while that operation is not running" phase slot)
            else
                let isWrite = (phase = RequestPhase) = isClient s
                let s = finish phase s

                let s =
                    if isWrite then
                        { s with WriteError = ValueSome error }
                    else
                        { s with ReadError = ValueSome error }

                let s = if phase = RequestPhase then skipResponse slot s else s
                Ok(pump s [])
        | BodyFailed error, _ ->
            let s =
                if s.ReadError.IsNone then
                    { s with ReadError = ValueSome error }
                else
                    s

            Ok(s, [])
        | BodyWanted slot, ServerRole ->
            if
                s.AwaitingContinue.Contains slot
                && not s.ResponseRunning
                && s.ResponseTurn = slot
                && s.WriteError.IsNone
                && not (stopped s)
            then
                Ok(
                    { s with
                        ResponseRunning = true
                        AwaitingContinue = s.AwaitingContinue.Remove slot
                    },
                    [ SendContinue slot ]
                )
            else
                Ok(s, [])
        | ContinueWritten(slot, error), ServerRole ->
            if not (s.ResponseRunning && s.ResponseTurn = slot) then
                invalid (sprintf "ContinueWritten %d while no 100 Continue is being written" slot)
            else
                let s = { s with ResponseRunning = false }

                let s =
                    match error with
                    | ValueSome e -> { s with WriteError = ValueSome e }
                    | ValueNone -> s

                Ok(pump s [])
        | StopWriting, ClientRole ->
            let s =
                if s.WriteError.IsNone then
                    { s with
                        WriteError = ValueSome PersistEof
                    }
                else
                    s

            Ok(s, [])
        | CloseRequested, _ ->
            if stopped s then
                Ok(s, [])
            else
                let s, actions = pump { s with Closed = true } []
                Ok(s, CloseTransport :: actions)
        | HijackRequested, _ ->
            if stopped s then
                Result.Error UseAfterClose
            else
                let s, actions = pump { s with Hijacked = true } []
                Ok(s, HandOver :: actions)
        | _, role -> invalid (sprintf "%A does not apply to the %A" event role)

    /// True when the connection may carry another exchange right away: every request answered,
    /// nothing running or queued, no error on either side, not closed or hijacked. A transport puts
    /// a connection back in its idle pool only then (and once the last body was read to its end).
    let reusable (s: ConnState) =
        pending s = 0
        && not s.RequestRunning
        && not s.ResponseRunning
        && s.RequestQueue.IsEmpty
        && s.ResponseQueue.IsEmpty
        && s.ReadError.IsNone
        && s.WriteError.IsNone
        && not (stopped s)

    /// True when a request that failed on a reused idle connection may be sent again on a fresh
    /// one (Go's Transport rule): the connection was reused, not one byte of the response arrived,
    /// the method is idempotent (or the request carries an Idempotency-Key), and the body can be
    /// sent again.
    let retryable
        (reusedConnection: bool)
        (gotResponseBytes: bool)
        (requestMethod: string)
        (hasIdempotencyKey: bool)
        (bodyReplayable: bool)
        =
        reusedConnection
        && not gotResponseBytes
        && (Message.isIdempotent requestMethod || hasIdempotencyKey)
        && bodyReplayable

    /// True when a client may wait for `100 Continue` for the request of `slot` before sending its
    /// body: the request's response is next to be read and nothing is reading, so the bytes that
    /// arrive now belong to that response. (When responses to earlier requests are still due, the
    /// body is sent at once.)
    let mayAwaitContinue (slot: int) (s: ConnState) =
        s.Role = ClientRole && s.ResponseTurn = slot && not s.ResponseRunning
