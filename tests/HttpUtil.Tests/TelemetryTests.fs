/// Telemetry through System.Diagnostics: the meter's instruments and the activities, seen with a MeterListener and an
/// ActivityListener, against Kestrel on 127.0.0.1; and nothing at all when nobody listens.
module HttpUtil.Tests.TelemetryTests

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Diagnostics
open System.Diagnostics.Metrics
open System.Net.Http
open System.Threading.Tasks
open NUnit.Framework
open Microsoft.AspNetCore.Http
open HttpUtil
open HttpUtil.Tests.Support
open HttpUtil.Tests.ProxyTests

/// One measurement: instrument, value, attributes.
type Measurement =
    {
        Name: string
        Value: float
        Tags: Map<string, obj>
    }

    member m.Tag(name: string) =
        match m.Tags.TryFind name with
        | Some v -> v
        | None -> null

/// A MeterListener on the HttpUtil meter that keeps every measurement.
type Meters() =
    let seen = ConcurrentQueue<Measurement>()
    let listener = new MeterListener()

    let keep (instrument: Instrument) (value: float) (tags: ReadOnlySpan<KeyValuePair<string, obj>>) =
        let mutable m = Map.empty

        for t in tags do
            m <- m.Add(t.Key, t.Value)

        seen.Enqueue
            {
                Name = instrument.Name
                Value = value
                Tags = m
            }

    do
        listener.InstrumentPublished <-
            fun instrument l ->
                if instrument.Meter.Name = HttpUtilTelemetry.Name then
                    l.EnableMeasurementEvents instrument

        listener.SetMeasurementEventCallback<double>(fun i v tags _ -> keep i v tags)
        listener.SetMeasurementEventCallback<int64>(fun i v tags _ -> keep i (float v) tags)
        listener.Start()

    /// The measurements of `name` whose server.port (or no port, with `anyPort`) matches.
    member _.Of(name: string, port: int) =
        seen
        |> Seq.filter (fun m -> m.Name = name && (m.Tag "server.port" = box port))
        |> List.ofSeq

    member _.All(name: string) =
        seen |> Seq.filter (fun m -> m.Name = name) |> List.ofSeq

    interface IDisposable with
        member _.Dispose() = listener.Dispose()

/// An ActivityListener on the HttpUtil source that records everything and keeps the stopped activities.
type Activities() =
    let stopped = ConcurrentQueue<Activity>()

    let listener =
        new ActivityListener(
            ShouldListenTo = (fun s -> s.Name = HttpUtilTelemetry.Name),
            Sample = (fun _ -> ActivitySamplingResult.AllDataAndRecorded),
            ActivityStopped = (fun a -> stopped.Enqueue a)
        )

    do ActivitySource.AddActivityListener listener

    member _.Stopped = List.ofSeq stopped

    interface IDisposable with
        member _.Dispose() = listener.Dispose()

/// An upstream that answers with the traceparent it received (or "none").
let private traceEcho () =
    Kestrel.Plain(fun ctx ->
        let tp = ctx.Request.Headers["traceparent"].ToString()
        ctx.Response.WriteAsync(if String.IsNullOrEmpty tp then "none" else tp))

[<Test>]
let ``a Transport request records http.client.request.duration once, with the conventional attributes`` () =
    task {
        use meters = new Meters()
        use k = Kestrel.Plain(fun ctx -> ctx.Response.WriteAsync "measured")
        use transport = new Transport()
        use client = new HttpClient(transport)
        let! body = client.GetStringAsync(k.Uri "/m")
        Assert.That(body, Is.EqualTo "measured")

        match meters.Of("http.client.request.duration", k.Port) with
        | [ m ] ->
            Assert.That(m.Value, Is.GreaterThan 0.0)
            Assert.That(m.Tag "http.request.method", Is.EqualTo "GET")
            Assert.That(m.Tag "http.response.status_code", Is.EqualTo 200)
            Assert.That(m.Tag "server.address", Is.EqualTo "127.0.0.1")
            Assert.That(m.Tag "url.scheme", Is.EqualTo "http")
            Assert.That(m.Tag "network.protocol.version", Is.EqualTo "1.1")
            Assert.That(m.Tags.ContainsKey "error.type", Is.False)
        | other -> Assert.Fail(sprintf "expected one duration, got %A" other)
    }
    |> sync

[<Test>]
let ``a reused connection is counted as reused, with its idle time; open connections move between active and idle and close``
    ()
    =
    task {
        use meters = new Meters()
        use k = Kestrel.Plain(fun ctx -> ctx.Response.WriteAsync "again")
        let transport = new Transport()
        use client = new HttpClient(transport, false)
        let! _ = client.GetStringAsync(k.Uri "/1")
        let! _ = client.GetStringAsync(k.Uri "/2")

        let uses = meters.Of("httputil.client.connection.uses", k.Port)

        Assert.That(
            uses
            |> List.map (fun m -> m.Tag "httputil.connection.reused", m.Tag "httputil.connection.was_idle"),
            Is.EqualTo(box [ box false, box false; box true, box true ])
        )

        Assert.That(meters.Of("httputil.client.connection.idle_time", k.Port).Length, Is.EqualTo 1)

        let openNow () =
            meters.Of("http.client.open_connections", k.Port)
            |> List.groupBy (fun m -> string (m.Tag "http.connection.state"))
            |> List.map (fun (state, ms) -> state, ms |> List.sumBy (fun m -> m.Value))
            |> Map.ofList

        Assert.That(
            (openNow () = Map.ofList [ "active", 0.0; "idle", 1.0 ]),
            Is.True,
            sprintf "%A: " (openNow ()) + "one connection, idle in the pool"
        )

        transport.Dispose()

        Assert.That(
            (openNow () = Map.ofList [ "active", 0.0; "idle", 0.0 ]),
            Is.True,
            sprintf "%A: " (openNow ()) + "closed with the transport"
        )

        match meters.Of("http.client.connection.duration", k.Port) with
        | [ d ] -> Assert.That(d.Tag "network.peer.address", Is.EqualTo "127.0.0.1")
        | other -> Assert.Fail(sprintf "expected one connection duration, got %A" other)
    }
    |> sync

[<Test>]
let ``a DNS lookup records dns.lookup.duration with the name asked`` () =
    task {
        use meters = new Meters()
        use k = Kestrel.Plain(fun ctx -> ctx.Response.WriteAsync "by name")
        use transport = new Transport()
        use client = new HttpClient(transport)
        let! body = client.GetStringAsync(sprintf "http://localhost:%d/" k.Port)
        Assert.That(body, Is.EqualTo "by name")

        let lookups =
            meters.All "dns.lookup.duration"
            |> List.filter (fun m -> m.Tag "dns.question.name" = box "localhost")

        Assert.That(lookups.Length, Is.EqualTo 1)
        Assert.That(lookups.Head.Tags.ContainsKey "error.type", Is.False)
    }
    |> sync

[<Test>]
let ``a refused connection records the duration with error.type connection_error`` () =
    task {
        use meters = new Meters()
        let port = freePort ()
        use transport = new Transport()
        use client = new HttpClient(transport)

        let! failed =
            task {
                try
                    let! _ = client.GetStringAsync(sprintf "http://127.0.0.1:%d/" port)
                    return false
                with :? HttpRequestException ->
                    return true
            }

        Assert.That(failed, Is.True)

        match meters.Of("http.client.request.duration", port) with
        | [ m ] ->
            Assert.That(m.Tag "error.type", Is.EqualTo "connection_error")
            Assert.That(m.Tags.ContainsKey "http.response.status_code", Is.False)
        | other -> Assert.Fail(sprintf "expected one duration, got %A" other)
    }
    |> sync

[<Test>]
let ``traceparent reaches the upstream, and the proxy's server activity is the parent of its upstream activity`` () =
    task {
        use activities = new Activities()
        use meters = new Meters()
        use upstream = traceEcho ()
        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))
        use client = new HttpClient()
        let clientTrace = ActivityTraceId.CreateRandom()
        let clientSpan = ActivitySpanId.CreateRandom()
        use request = new HttpRequestMessage(HttpMethod.Get, frontend.Uri "/traced")
        request.Headers.Add("traceparent", sprintf "00-%s-%s-01" (clientTrace.ToHexString()) (clientSpan.ToHexString()))
        use! response = client.SendAsync request
        let! seen = response.Content.ReadAsStringAsync()

        let stopped = activities.Stopped

        let server =
            stopped
            |> List.find (fun a -> a.OperationName = HttpUtilTelemetry.ProxyRequestActivity)

        let upstreamCall =
            stopped
            |> List.find (fun a -> a.OperationName = HttpUtilTelemetry.ClientRequestActivity)

        Assert.That(server.Kind, Is.EqualTo ActivityKind.Server)
        Assert.That(upstreamCall.Kind, Is.EqualTo ActivityKind.Client)
        Assert.That(server.TraceId, Is.EqualTo clientTrace, "the proxy continues the client's trace")

        Assert.That(
            upstreamCall.ParentSpanId,
            Is.EqualTo server.SpanId,
            "the upstream request is a child of the proxied request"
        )

        Assert.That(upstreamCall.TraceId, Is.EqualTo clientTrace)

        Assert.That(
            seen,
            Is.EqualTo(sprintf "00-%s-%s-01" (clientTrace.ToHexString()) (upstreamCall.SpanId.ToHexString())),
            "the upstream got the proxy's context in place of the client's"
        )

        Assert.That(server.GetTagItem "http.response.status_code", Is.EqualTo 200)
        Assert.That(upstreamCall.GetTagItem "server.port", Is.EqualTo upstream.Port)
        Assert.That(upstreamCall.GetTagItem "httputil.connection.reused", Is.EqualTo false)
        Assert.That(upstreamCall.GetTagItem "httputil.tcp_connection.ms" :?> float, Is.GreaterThanOrEqualTo 0.0)

        match meters.All "httputil.proxy.request.duration" with
        | [ m ] -> Assert.That(m.Tag "http.response.status_code", Is.EqualTo 200)
        | other -> Assert.Fail(sprintf "expected one proxy duration, got %A" other)
    }
    |> sync

[<Test>]
let ``a failed proxied request is counted by error and side`` () =
    task {
        use meters = new Meters()
        let port = freePort ()
        let proxy = ReverseProxy.NewSingleHost(Uri(sprintf "http://127.0.0.1:%d/" port))
        proxy.ErrorLog <- ListLogger()
        use frontend = front proxy
        use client = new HttpClient()
        use! response = client.GetAsync(frontend.Uri "/down")
        Assert.That(int response.StatusCode, Is.EqualTo 502)

        match meters.All "httputil.proxy.failures" with
        | [ m ] ->
            Assert.That(m.Tag "error.type", Is.EqualTo "Upstream")
            Assert.That(m.Tag "httputil.proxy.error.side", Is.EqualTo "upstream")
        | other -> Assert.Fail(sprintf "expected one failure, got %A" other)

        match meters.All "httputil.proxy.request.duration" with
        | [ m ] ->
            Assert.That(m.Tag "http.response.status_code", Is.EqualTo 502)
            Assert.That(m.Tag "error.type", Is.EqualTo "Upstream")
        | other -> Assert.Fail(sprintf "expected one proxy duration, got %A" other)
    }
    |> sync

[<Test>]
let ``with no listener nothing is created: no activity, no injected trace context, the client's passes through unchanged``
    ()
    =
    task {
        use upstream = traceEcho ()
        use transport = new Transport()
        use direct = new HttpClient(transport)
        let! alone = direct.GetStringAsync(upstream.Uri "/")
        Assert.That(alone, Is.EqualTo "none", "no activity, so no traceparent")
        Assert.That(Activity.Current, Is.Null)

        use frontend = front (ReverseProxy.NewSingleHost(upstream.Uri "/"))
        use client = new HttpClient()
        use request = new HttpRequestMessage(HttpMethod.Get, frontend.Uri "/")
        let sent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        request.Headers.Add("traceparent", sent)
        use! response = client.SendAsync request
        let! seen = response.Content.ReadAsStringAsync()
        Assert.That(seen, Is.EqualTo sent, "nothing listens: the proxy forwards the client's context as it came")
    }
    |> sync

[<Test>]
let ``ActivityHeadersPropagator null sends no trace context, even with an activity recording`` () =
    task {
        use activities = new Activities()
        use upstream = traceEcho ()
        use transport = new Transport(ActivityHeadersPropagator = null)
        use client = new HttpClient(transport)
        let! seen = client.GetStringAsync(upstream.Uri "/")
        Assert.That(seen, Is.EqualTo "none")

        Assert.That(
            activities.Stopped
            |> List.exists (fun a -> a.OperationName = HttpUtilTelemetry.ClientRequestActivity),
            Is.True,
            "the activity was made; only its propagation is off"
        )
    }
    |> sync

[<Test>]
let ``a request that waits for a connection at MaxConnsPerHost records http.client.request.time_in_queue; one that does not, nothing``
    ()
    =
    task {
        use meters = new Meters()
        let k, arrived, release = holdingKestrel "/hold" "done" "done"
        use k = k
        use transport = new Transport(MaxConnsPerHost = 1)
        use invoker = new HttpMessageInvoker(transport, false)

        let send (path: string) =
            task {
                use! response =
                    invoker.SendAsync(
                        new HttpRequestMessage(HttpMethod.Get, k.Uri path),
                        Threading.CancellationToken.None
                    )

                return! response.Content.ReadAsStringAsync()
            }

        let first = send "/hold"
        do! arrived.Wait()
        Assert.That(meters.Of("http.client.request.time_in_queue", k.Port), Is.Empty, "the first request did not wait")
        // The second request queues for the only connection before SendAsync returns its task.
        let second = send "/next"
        release.Set()
        let! a = first
        let! b = second
        Assert.That((a, b), Is.EqualTo(("done", "done")))

        match meters.Of("http.client.request.time_in_queue", k.Port) with
        | [ m ] ->
            Assert.That(m.Value, Is.GreaterThanOrEqualTo 0.0)
            Assert.That(m.Tag "http.request.method", Is.EqualTo "GET")
        | other -> Assert.Fail(sprintf "expected one queue time, got %A" other)
    }
    |> sync
