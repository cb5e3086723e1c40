/// The pieces the connection is composed of, each on its own: the persist tables, the pipeline
/// lanes, the continue rules, reuse and retry, the head preparation and interpretation of
/// Exchange, and the tables docs/ARCHITECTURE.md prints.
module HttpUtil.Core.Tests.PersistTests

open System
open System.IO
open NUnit.Framework
open FsCheck
open FsCheck.FSharp
open FsCheck.NUnit
open HttpUtil.Core
open HttpUtil.Core.Tests.Gen

// ---------------------------------------------------------------------------------------------
// Persist: the side table and the check table.

let private e1 = Transport(exn "first")
let private e2 = Transport(exn "second")

/// The side table, written out independently of `Persist.next`.
let private expectedSide (side: Side) (event: SideEvent) =
    match side, event with
    | Open, LastMessage -> Ended
    | Open, Failure e -> Broken e
    | Ended, LastMessage -> Ended
    | Ended, Failure e -> Broken e
    | Broken e, _ -> Broken e

[<Test>]
let ``every side state and event moves as the table says`` () =
    for side in [ Open; Ended; Broken e1 ] do
        for event in [ LastMessage; Failure e2 ] do
            Assert.That(Persist.next side event, Is.EqualTo(expectedSide side event), sprintf "%A on %A" event side)

let private sideEvent =
    Gen.elements [ LastMessage; Failure e1; Failure e2; Failure EndOfInput ]

[<Property(MaxTest = 300)>]
let ``a side ends only by a last message, and its first failure sticks`` () =
    Prop.forAll (Gen.listOf sideEvent |> Arb.fromGen) (fun events ->
        let final = List.fold Persist.next Open events

        let firstFailure =
            events
            |> List.tryPick (function
                | Failure e -> Some e
                | _ -> None)

        match final, firstFailure with
        | Broken e, Some f -> obj.ReferenceEquals(e, f) || e = f
        | Ended, None -> List.contains LastMessage events
        | Open, None -> List.isEmpty events
        | _ -> false)

/// The check table, written out independently of `Persist.checks`.
let private expectedRefusal role phase (reading: Side) (writing: Side) life =
    let order =
        match role, phase with
        | ClientRole, RequestPhase -> [ reading; writing ]
        | ClientRole, ResponsePhase -> [ reading ]
        | ServerRole, RequestPhase -> [ writing; reading ]
        | ServerRole, ResponsePhase -> [ writing ]

    match order |> List.tryPick (fun s -> Persist.refusalOf s |> ValueOption.toOption) with
    | Some e -> ValueSome e
    | None ->
        match life with
        | Live -> ValueNone
        | _ when role = ServerRole && phase = ResponsePhase -> ValueSome ClosedByUser
        | _ -> ValueSome UseAfterClose

[<Test>]
let ``every operation meets the refusal the check table gives, for every side and life`` () =
    let sides = [ Open; Ended; Broken e1 ]

    for role in [ ClientRole; ServerRole ] do
        for phase in [ RequestPhase; ResponsePhase ] do
            for reading in sides do
                for writing in sides do
                    for life in [ Live; Closed; Hijacked ] do
                        Assert.That(
                            Persist.refusal role phase reading writing life,
                            Is.EqualTo(expectedRefusal role phase reading writing life),
                            sprintf "%A %A reading=%A writing=%A %A" role phase reading writing life
                        )

[<Test>]
let ``a side refuses with PersistEof once ended, with its error once broken`` () =
    Assert.That(Persist.refusalOf Open, Is.EqualTo(ValueNone: ConnError voption))
    Assert.That(Persist.refusalOf Ended, Is.EqualTo(ValueSome PersistEof))
    Assert.That(Persist.refusalOf (Broken e1), Is.EqualTo(ValueSome e1))

// ---------------------------------------------------------------------------------------------
// The connection's sides only move along the table, and its life only forward.

type private Op =
    | Start
    | Answer
    | FinishOk
    | FinishLast
    | Fail
    | Body
    | Stop
    | CloseIt
    | HijackIt

[<Property(MaxTest = 300)>]
let ``through any run of events, each side moves only as the side table allows`` (client: bool) =
    let ops =
        Gen.elements [ Start; Answer; FinishOk; FinishLast; Fail; Body; Stop; CloseIt; HijackIt ]
        |> Gen.listOf
        |> Arb.fromGen

    Prop.forAll ops (fun ops ->
        let role = if client then ClientRole else ServerRole
        let mutable s = Connection.create role
        let mutable ok = true

        let allowed (before: Side) (after: Side) =
            after = before
            || after = Persist.next before LastMessage
            || (match before, after with
                | (Open | Ended), Broken _ -> true
                | _ -> false)

        let lifeOk (before: Life) (after: Life) = before = after || before = Live

        for op in ops do
            let runningRead = if client then s.Responses else s.Requests

            let runningWrite = if client then s.Requests else s.Responses

            let events =
                match op with
                | Start -> [ (if client then StartWriteRequest false else StartReadRequest) ]
                | Answer ->
                    [
                        for slot in s.Outstanding ->
                            (if client then
                                 StartReadResponse(ValueSome slot)
                             else
                                 StartWriteResponse(ValueSome slot, false))
                    ]
                    |> List.truncate 1
                | FinishOk
                | FinishLast ->
                    let last = (op = FinishLast)

                    [
                        if runningRead.Running then
                            yield HeadRead(runningRead.Turn, last, false)
                        elif runningWrite.Running then
                            yield Wrote runningWrite.Turn
                    ]
                | Fail ->
                    [
                        if runningRead.Running then
                            yield InputEnded(runningRead.Turn, 0L)
                        elif runningWrite.Running then
                            yield Failed((if client then RequestPhase else ResponsePhase), runningWrite.Turn, e2)
                    ]
                | Body -> [ BodyFailed e1 ]
                | Stop -> if client then [ StopWriting ] else []
                | CloseIt -> [ CloseRequested ]
                | HijackIt -> [ HijackRequested ]

            for ev in events do
                match Connection.step s ev with
                | Ok(next, _) ->
                    ok <-
                        ok
                        && allowed s.Reading next.Reading
                        && allowed s.Writing next.Writing
                        && lifeOk s.Life next.Life

                    s <- next
                | Error(InvalidEvent reason) -> failwithf "the run fed an invalid event %A: %s" ev reason
                | Error _ -> ()

        ok)

// ---------------------------------------------------------------------------------------------
// Pipeline: tickets run in order, one at a time; passed-over tickets are skipped.

[<Property(MaxTest = 300)>]
let ``a lane grants tickets strictly in order, one at a time, skipping those passed over``
    (order: int list)
    (passed: int list)
    =
    let n = 8

    let asks =
        (order |> List.map (fun i -> abs i % n)) @ [ 0 .. n - 1 ] |> List.distinct

    let skip = passed |> List.map (fun i -> abs i % n) |> Set.ofList
    let mutable lane = Pipeline.empty
    let granted = ResizeArray<int>()

    for t in skip do
        lane <- Pipeline.passOver t lane

    let rec drain () =
        match Pipeline.tryNext lane with
        | ValueSome(struct (t, _, l)) ->
            granted.Add t
            lane <- Pipeline.advance (Pipeline.start l)
            drain ()
        | ValueNone -> ()

    for t in asks |> List.filter (fun t -> not (skip.Contains t)) do
        if Pipeline.isFree t lane then
            granted.Add t
            lane <- Pipeline.advance (Pipeline.start lane)
        else
            lane <- Pipeline.wait t false lane

        drain ()

    List.ofSeq granted = ([ 0 .. n - 1 ] |> List.filter (fun t -> not (skip.Contains t)))
    && Pipeline.isIdle lane

// ---------------------------------------------------------------------------------------------
// Continue, reuse and retry.

let private req version (fields: (string * string) list) =
    {
        Method = "POST"
        Target = "/"
        Form = Origin
        Version = version
        Headers = Headers.ofList fields
    }

[<Test>]
let ``100-continue: only an HTTP/1.1 request that says so waits; interim is 1xx but 101`` () =
    Assert.That(Continue.expects (req Http11 [ "Expect", " 100-Continue " ]), Is.True)
    Assert.That(Continue.expects (req Http10 [ "Expect", "100-continue" ]), Is.False)
    Assert.That(Continue.expects (req Http11 [ "Expect", "200-ok" ]), Is.False)
    Assert.That(Continue.expects (req Http11 []), Is.False)

    for status, interim in
        [
            100, true
            102, true
            103, true
            199, true
            101, false
            200, false
            99, false
        ] do
        Assert.That(Continue.isInterim status, Is.EqualTo interim, string status)

[<Test>]
let ``interim responses are bounded by count and by bytes`` () =
    let limits = Limits.Default.WithMaxInterimResponses(2).WithMaxHeadBytes(100)

    let step (count, bytes) size =
        Continue.countInterim limits count bytes size

    Assert.That(step (0, 0L) 40L, Is.EqualTo(Ok(struct (1, 40L)): Result<struct (int * int64), HttpError>))
    Assert.That(step (1, 40L) 40L, Is.EqualTo(Ok(struct (2, 80L)): Result<struct (int * int64), HttpError>))

    match step (2, 80L) 1L with
    | Error e -> Assert.That(e.Message, Does.Contain "MaxInterimResponses")
    | Ok _ -> Assert.Fail "a third interim response was accepted"

    match step (1, 80L) 40L with
    | Error e ->
        Assert.That(e.Kind, Is.EqualTo ErrorKind.TooManyInterimResponses)
        Assert.That(e.Message, Does.Contain "MaxHeadBytes")
    | Ok _ -> Assert.Fail "interim bytes past MaxHeadBytes were accepted"

[<Test>]
let ``the client waits for 100 Continue only when its response is next to read; the server sends it only in turn`` () =
    let s = Connection.create ClientRole
    let s, _ = Connection.step s (StartWriteRequest false) |> ok
    Assert.That(Connection.mayAwaitContinue 0 s, Is.True)
    let s, _ = Connection.step s (Wrote 0) |> ok
    let s, _ = Connection.step s (StartWriteRequest false) |> ok
    Assert.That(Connection.mayAwaitContinue 1 s, Is.False, "the response to slot 0 comes first")

    let lane = Pipeline.empty
    Assert.That(Continue.serverMaySend 0 (Set.ofList [ 0 ]) lane Open Live, Is.True)
    Assert.That(Continue.serverMaySend 0 (Set.ofList [ 0 ]) lane Ended Live, Is.False)
    Assert.That(Continue.serverMaySend 0 (Set.ofList [ 0 ]) lane Open Closed, Is.False)
    Assert.That(Continue.serverMaySend 1 (Set.ofList [ 1 ]) lane Open Live, Is.False, "slot 0 answers first")
    Assert.That(Continue.serverMaySend 0 Set.empty lane Open Live, Is.False, "not asked for")

[<Test>]
let ``a connection is reusable only when idle, open on both sides and live`` () =
    let s = Connection.create ClientRole
    Assert.That(Connection.reusable s, Is.True)
    let s1, _ = Connection.step s (StartWriteRequest false) |> ok
    Assert.That(Connection.reusable s1, Is.False, "a write runs")
    let s2, _ = Connection.step s1 (Wrote 0) |> ok
    Assert.That(Connection.reusable s2, Is.False, "a response is pending")
    let s3, _ = Connection.step s2 (StartReadResponse(ValueSome 0)) |> ok
    let s4, _ = Connection.step s3 (HeadRead(0, false, false)) |> ok
    Assert.That(Connection.reusable s4, Is.True)
    let s5, _ = Connection.step s4 (BodyFailed e1) |> ok
    Assert.That(Connection.reusable s5, Is.False, "the reading side broke")
    let s6, _ = Connection.step s4 CloseRequested |> ok
    Assert.That(Connection.reusable s6, Is.False, "closed")
    let s7, _ = Connection.step s3 (HeadRead(0, true, false)) |> ok
    Assert.That(Connection.reusable s7, Is.False, "the response ended the connection")

[<Property(MaxTest = 500)>]
let ``a failed attempt is retried only on a reused connection that died before any response byte, when it may be repeated``
    (reused: bool)
    (lost: bool)
    (bytes: bool)
    (key: bool)
    (replayable: bool)
    (methodIndex: int)
    =
    let methods =
        [|
            "GET"
            "HEAD"
            "OPTIONS"
            "TRACE"
            "PUT"
            "DELETE"
            "POST"
            "PATCH"
            "CONNECT"
        |]

    let m = methods[abs methodIndex % methods.Length]

    let f =
        {
            ConnectionReused = reused
            ConnectionLost = lost
            GotResponseBytes = bytes
            Method = m
            HasIdempotencyKey = key
            BodyReplayable = replayable
        }

    let idempotent =
        Array.contains m [| "GET"; "HEAD"; "OPTIONS"; "TRACE"; "PUT"; "DELETE" |]

    Routing.shouldRetry f = (reused && lost && not bytes && (idempotent || key) && replayable)

[<Test>]
let ``routes: direct, absolute-form through a proxy, CONNECT tunnel for https`` () =
    Assert.That(Routing.route "http" false, Is.EqualTo Direct)
    Assert.That(Routing.route "https" false, Is.EqualTo Direct)
    Assert.That(Routing.route "http" true, Is.EqualTo ThroughProxy)
    Assert.That(Routing.route "https" true, Is.EqualTo Tunnel)
    Assert.That(Routing.absoluteForm ThroughProxy, Is.True)
    Assert.That(Routing.absoluteForm Tunnel, Is.False)
    Assert.That(Routing.connectsToProxy Direct, Is.False)

// ---------------------------------------------------------------------------------------------
// Exchange: heads prepared for writing and interpreted after reading.

[<Test>]
let ``Host: uri-host with an optional port, IP literals in brackets, empty allowed`` () =
    for ok' in
        [
            "example.com"
            "example.com:8080"
            "a-b.c_d~e"
            "[::1]"
            "[::1]:80"
            "127.0.0.1:1"
            ""
            "%41b"
            "x:"
        ] do
        Assert.That(Exchange.isValidHost ok', Is.True, ok')

    for bad in [ "a b"; "a:8o"; "[::1"; "[]"; "a/b"; "a@b"; "%4"; "%zz"; "[::1]x"; "a\tb" ] do
        Assert.That(Exchange.isValidHost bad, Is.False, bad)

let private fields (pairs: (string * string) list) : Collections.Generic.IReadOnlyList<HeaderField> =
    pairs |> List.map (fun (n, v) -> { Name = n; Value = v }) |> ResizeArray :> _

[<Test>]
let ``prepareRequest: Host first, from the URI or as given; a relative HTTP/1.1 request without one is refused`` () =
    let prep uri version host =
        Exchange.prepareRequest
            "GET"
            (Uri(uri, UriKind.RelativeOrAbsolute))
            version
            false
            host
            (fields [ "Accept", "*/*" ])
            Framing.Absent

    match prep "http://example.com:8080/a?b" Http11 null with
    | Ok r ->
        Assert.That(r.Head.Target, Is.EqualTo "/a?b")

        Assert.That(
            r.Head.Headers[0],
            Is.EqualTo
                {
                    Name = "Host"
                    Value = "example.com:8080"
                }
        )

        Assert.That(r.Head.Headers[1].Name, Is.EqualTo "Accept")
        Assert.That(r.Body, Is.EqualTo Framing.NoBody)
    | Error e -> Assert.Fail(string e)

    match prep "/x" Http11 null with
    | Error e ->
        Assert.That(e.Kind, Is.EqualTo ErrorKind.InvalidHost)
        Assert.That(e.Message, Does.Contain "RFC 9112 section 3.2")
    | Ok r -> Assert.Fail(sprintf "a request without Host was prepared: %A" r.Head)

    match prep "/x" Http11 "given" with
    | Ok r -> Assert.That(r.Head.Headers[0], Is.EqualTo { Name = "Host"; Value = "given" })
    | Error e -> Assert.Fail(string e)

    match prep "/x" Http10 null with
    | Ok r -> Assert.That(r.Head.Headers.Contains "Host", Is.False, "HTTP/1.0 needs no Host")
    | Error e -> Assert.Fail(string e)

[<Test>]
let ``prepareRequest frames the body and says whether it waits for 100 Continue`` () =
    let uri = Uri "http://x/"

    let post body expect =
        Exchange.prepareRequest
            "POST"
            uri
            Http11
            false
            null
            (fields (if expect then [ "Expect", "100-continue" ] else []))
            body
        |> ok

    let r = post (Framing.Known 5L) true
    Assert.That(r.Body, Is.EqualTo(Framing.ContentLength 5L))
    Assert.That(r.ExpectsContinue, Is.True)
    Assert.That((post Framing.Absent true).ExpectsContinue, Is.False, "nothing to wait with")
    Assert.That((post Framing.Unknown false).Body, Is.EqualTo Framing.Chunked)

    Assert.That(
        (post Framing.Unknown false).Head.Headers.GetValues "Transfer-Encoding",
        Is.EqualTo(box [| "chunked" |])
    )

[<Test>]
let ``readResponse: interim, final, switching; readRequest: framing, close, expectation, Host`` () =
    let head status =
        {
            Version = Http11
            Status = status
            Reason = ""
            Headers = Headers.ofList [ "Content-Length", "0" ]
        }

    for m, status, kind in
        [
            "GET", 100, Interim
            "GET", 103, Interim
            "GET", 101, Switching
            "CONNECT", 200, Switching
            "CONNECT", 407, Final
            "GET", 200, Final
        ] do
        Assert.That((Exchange.readResponse m (head status) |> ok).Kind, Is.EqualTo kind, sprintf "%s %d" m status)

    let r =
        Exchange.readRequest (
            req
                Http11
                [
                    "Host", "x"
                    "Expect", "100-continue"
                    "Connection", "close"
                    "Content-Length", "3"
                ]
        )
        |> ok

    Assert.That(
        r,
        Is.EqualTo
            {
                Body = Framing.ContentLength 3L
                Closes = true
                ExpectsContinue = true
            }
    )

    match Exchange.readRequest (req Http11 [ "Host", "x"; "host", "y" ]) with
    | Error e -> Assert.That(e.Kind, Is.EqualTo ErrorKind.InvalidHost)
    | Ok _ -> Assert.Fail "two Host fields were accepted"

[<Test>]
let ``status hints: 400 by default, 413, 414, 431, 501 and 505 where the kind calls for them`` () =
    for kind, status in
        [
            ErrorKind.InvalidRequestLine, 400
            ErrorKind.InvalidHost, 400
            ErrorKind.BareCR, 400
            ErrorKind.TrailerTooLarge, 413
            ErrorKind.RequestLineTooLong, 414
            ErrorKind.HeadTooLarge, 431
            ErrorKind.TooManyHeaders, 431
            ErrorKind.LineTooLong, 431
            ErrorKind.UnsupportedTransferCoding, 501
            ErrorKind.UnsupportedVersion, 505
        ] do
        Assert.That(HttpError.statusHint kind, Is.EqualTo status, string kind)

// ---------------------------------------------------------------------------------------------
// The tables as docs/ARCHITECTURE.md prints them.

let private repositoryRoot () =
    let rec up (d: DirectoryInfo | null) =
        match d with
        | null -> failwith "no HttpUtil.sln above the test directory"
        | d when File.Exists(Path.Combine(d.FullName, "HttpUtil.sln")) -> d.FullName
        | d -> up d.Parent

    up (DirectoryInfo TestContext.CurrentContext.TestDirectory)

[<Test>]
let ``docs/ARCHITECTURE.md prints the side table and the check table as the core computes them`` () =
    let sides = Persist.describeSides ()
    let checks = Persist.describeChecks ()
    TestContext.Out.WriteLine sides
    TestContext.Out.WriteLine checks

    let doc =
        File.ReadAllText(Path.Combine(repositoryRoot (), "docs", "ARCHITECTURE.md"))

    Assert.That(doc, Does.Contain sides, "the side table in the doc is out of date")
    Assert.That(doc, Does.Contain checks, "the check table in the doc is out of date")
