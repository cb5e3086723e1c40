namespace HttpUtil.Core

// The persistence of one HTTP/1.x connection, as Go's httputil ClientConn and ServerConn keep it
// (persist.go), written as named states and tables.
//
// A connection has two directions, reading and writing, each in one `Side` state, and a `Life`
// (whether its owner still holds it). One table moves a side:
//
//   from       event          to
//   Open       LastMessage    Ended       a message that ends the connection went this way
//   Open       Failure e      Broken e    the read or write failed, or the input ended
//   Ended      LastMessage    Ended
//   Ended      Failure e      Broken e    a failure after the last message is the news
//   Broken e   any            Broken e    the first failure sticks
//
// and one says what an operation meets before it may touch the wire (Go checks in this order):
//
//   role     operation         checks                 after Close or Hijack
//   client   write request     reading, then writing  UseAfterClose (Go's errClosed)
//   client   read response     reading                UseAfterClose
//   server   read request      writing, then reading  UseAfterClose
//   server   write response    writing                ClosedByUser (Go's ErrClosed)
//
// A side that is Ended refuses with PersistEof; a Broken side with its error.

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

/// Why an operation on a connection cannot go on.
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

/// The state of one direction (reading or writing) of a connection.
type Side =
    /// Messages may go this way.
    | Open
    /// The last message went this way: nothing more will, and operations meet `PersistEof`.
    | Ended
    /// This direction failed: every later operation on it meets this error.
    | Broken of Error: ConnError

/// What happens to one direction of a connection.
type SideEvent =
    /// A message that ends the connection went this way (`Connection: close`, HTTP/1.0 without
    /// keep-alive, a body delimited by closing; or, for a server, the answer to such a request).
    | LastMessage
    /// An operation this way failed, or the input ended.
    | Failure of Error: ConnError

/// Whether the owner of a connection object still uses it through that object.
type Life =
    /// In use.
    | Live
    /// `Close` was called: the transport is closed.
    | Closed
    /// `Hijack` was called: the caller owns the transport now.
    | Hijacked

/// Which direction of a connection an operation moves bytes in.
type Direction =
    /// Bytes come in (client: responses; server: requests).
    | Reading
    /// Bytes go out (client: requests; server: responses).
    | Writing

/// The persistence rules: the side table, what an operation meets, and when a message ends its
/// connection (RFC 9112 section 9.3).
module Persist =
    /// The side table (see the top of this file).
    let next (side: Side) (event: SideEvent) =
        match side, event with
        //  from        event            to
        | Open,       LastMessage    -> Ended
        | Open,       Failure e      -> Broken e
        | Ended,      LastMessage    -> Ended
        | Ended,      Failure e      -> Broken e
        | Broken e,   _              -> Broken e

    /// The error a side in this state refuses operations with; none when it is open.
    let refusalOf (side: Side) =
        match side with
        | Open -> ValueNone
        | Ended -> ValueSome PersistEof
        | Broken e -> ValueSome e

    /// Which direction an operation of `phase` moves bytes in, for `role`.
    let direction (role: Role) (phase: Phase) =
        match role, phase with
        //  role         phase            direction
        | ClientRole,  RequestPhase   -> Writing
        | ClientRole,  ResponsePhase  -> Reading
        | ServerRole,  RequestPhase   -> Reading
        | ServerRole,  ResponsePhase  -> Writing

    /// The sides an operation checks, in order, and what it meets after Close or Hijack.
    let private checkTable (role: Role) (phase: Phase) =
        match role, phase with
        //  role         phase              checks                  after Close or Hijack
        | ClientRole,  RequestPhase   -> [ Reading; Writing ],    UseAfterClose
        | ClientRole,  ResponsePhase  -> [ Reading ],             UseAfterClose
        | ServerRole,  RequestPhase   -> [ Writing; Reading ],    UseAfterClose
        | ServerRole,  ResponsePhase  -> [ Writing ],             ClosedByUser

    let private roleIndex role = match role with ClientRole -> 0 | ServerRole -> 2
    let private phaseIndex phase = match phase with RequestPhase -> 0 | ResponsePhase -> 1

    /// `checkTable`, built once (every operation reads it; a list literal would be built per call).
    let private checkRows =
        [| for role in [ ClientRole; ServerRole ] do
               for phase in [ RequestPhase; ResponsePhase ] -> checkTable role phase |]

    /// The sides an operation of `phase` checks, in order, and what it meets after Close or Hijack.
    let checks (role: Role) (phase: Phase) = checkRows[roleIndex role + phaseIndex phase]

    /// The error an operation of `phase` meets now, or none when it may go ahead: the first side
    /// in `checks` that refuses, then the life. (A loop, not closures: it runs for every operation.)
    let refusal (role: Role) (phase: Phase) (reading: Side) (writing: Side) (life: Life) =
        let sides, afterStop = checks role phase
        let mutable rest = sides
        let mutable found = ValueNone

        while found.IsNone && not rest.IsEmpty do
            found <-
                refusalOf (
                    match rest.Head with
                    | Reading -> reading
                    | Writing -> writing
                )

            rest <- rest.Tail

        match found, life with
        | ValueSome _, _ -> found
        | ValueNone, Live -> ValueNone
        | ValueNone, (Closed | Hijacked) -> ValueSome afterStop

    /// Which side the last message written ends: a client's last request ends its writing; a
    /// server's last response ends its reading (requests pipelined after it are never read).
    let endedByLastWrite (role: Role) =
        match role with
        | ClientRole -> Writing
        | ServerRole -> Reading

    /// The error a read meets when the input ends after `buffered` bytes of a head: a clean end
    /// (no byte) is the end of input; part of a response head is a truncated message; part of a
    /// request head is a graceful close, as Go treats it.
    let inputEnded (role: Role) (buffered: int64) =
        if buffered = 0L then
            EndOfInput
        else
            match role with
            | ClientRole ->
                Malformed(
                    HttpError.create
                        ErrorKind.UnexpectedEnd
                        buffered
                        (sprintf "the connection ended after %d bytes of a response head" buffered)
                )
            | ServerRole -> PersistEof

    /// The version rule for ending a connection (RFC 9112 section 9.3): HTTP/1.1 ends it with
    /// `Connection: close`, HTTP/1.0 unless `Connection: keep-alive`.
    let private closesByVersion (version: Http1Version) (headers: Headers) =
        match version with
        | Http11 -> Headers.hasConnectionToken "close" headers
        | Http10 -> not (Headers.hasConnectionToken "keep-alive" headers)

    /// True when the request of this head ends the connection: `Connection: close`, or HTTP/1.0
    /// without `Connection: keep-alive` (RFC 9112 section 9.3).
    let requestCloses (head: RequestHead) =
        closesByVersion head.Version head.Headers

    /// True when a response whose body is framed as `body` ends the connection: as for requests,
    /// or when its body runs until the connection closes.
    let responseClosesWith (head: ResponseHead) (body: Framing.BodyLength) =
        closesByVersion head.Version head.Headers
        || (match body with
            | Framing.UntilClose -> true
            | _ -> false)

    /// True when a response to `requestMethod` ends the connection (`responseClosesWith` with the
    /// framing worked out here; a response whose framing is invalid is judged by its version).
    let responseCloses (requestMethod: string) (head: ResponseHead) =
        match Framing.responseBody requestMethod head with
        | Ok body -> responseClosesWith head body
        | Error _ -> closesByVersion head.Version head.Headers

    /// `headers` saying that this message is the last on its connection: `Connection: close`
    /// added unless a Connection field already lists close.
    let markLast (headers: Headers) =
        if Headers.hasConnectionToken "close" headers then
            headers
        else
            Headers.add "Connection" "close" headers

    let private sideName (side: Side) =
        match side with
        | Open -> "Open"
        | Ended -> "Ended"
        | Broken _ -> "Broken e"

    let private eventName (event: SideEvent) =
        match event with
        | LastMessage -> "LastMessage"
        | Failure _ -> "Failure e"

    /// The side table as text, computed from `next` over every state and event: one row
    /// `from | event | to` per pair (what `docs/ARCHITECTURE.md` prints).
    let describeSides () =
        let e = Transport(exn "e")
        let states = [ Open; Ended; Broken e ]
        let events = [ LastMessage; Failure e ]

        [
            for s in states do
                for ev in events do
                    yield sprintf "| %s | %s | %s |" (sideName s) (eventName ev) (sideName (next s ev))
        ]
        |> String.concat "\n"

    /// The check table as text, computed from `checks` for both roles and phases.
    let describeChecks () =
        let name d =
            match d with
            | Reading -> "reading"
            | Writing -> "writing"

        [
            for role, r in [ ClientRole, "client"; ServerRole, "server" ] do
                for phase in [ RequestPhase; ResponsePhase ] do
                    let sides, afterStop = checks role phase

                    let op =
                        match direction role phase, phase with
                        | Writing, RequestPhase -> "write request"
                        | Reading, RequestPhase -> "read request"
                        | Writing, ResponsePhase -> "write response"
                        | Reading, ResponsePhase -> "read response"

                    yield
                        sprintf
                            "| %s | %s | %s | %A |"
                            r
                            op
                            (sides |> List.map name |> String.concat ", then ")
                            afterStop
        ]
        |> String.concat "\n"
