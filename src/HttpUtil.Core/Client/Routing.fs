namespace HttpUtil.Core

/// How a client reaches the server of a request.
type Route =
    /// Connect to the server itself; origin-form targets.
    | Direct
    /// Connect to the forward proxy and send it absolute-form targets (plain http through a proxy).
    | ThroughProxy
    /// Connect to the forward proxy, open a CONNECT tunnel to the server, then speak to the server
    /// through it (https through a proxy).
    | Tunnel

/// What a client knows about an attempt that failed, for the retry rule.
type FailedAttempt =
    {
        /// The connection had carried an earlier exchange (it came from the idle pool).
        ConnectionReused: bool
        /// The connection itself failed (reset, closed, end of input, a failed send), as opposed
        /// to a malformed response, a cancellation or a trace hook that threw.
        ConnectionLost: bool
        /// At least one byte of the response had arrived.
        GotResponseBytes: bool
        /// The request's method.
        Method: string
        /// The request carries an `Idempotency-Key` (or `X-Idempotency-Key`) field.
        HasIdempotencyKey: bool
        /// The request's body can be produced again (none, or held in memory).
        BodyReplayable: bool
    }

/// The client's routing and retry rules (Go's Transport).
module Routing =
    /// True for the schemes a client transport speaks HTTP/1.x to: http and https.
    let supportsScheme (scheme: string) = scheme = "http" || scheme = "https"

    /// True when a connection for `scheme` is made over TLS.
    let usesTls (scheme: string) = scheme = "https"

    /// The HTTP/1.x version to send a request asking for `major.minor` as: HTTP/1.0 as it is,
    /// anything else as HTTP/1.1; an error when a request for HTTP/2 or later insists on exactly
    /// that version (`exact`), which an HTTP/1.x transport cannot give.
    let wireVersion (major: int) (minor: int) (exact: bool) : Result<Http1Version, string> =
        match major, minor with
        | 1, 0 -> Ok Http10
        | m, _ when m >= 2 && exact ->
            Error(sprintf "this transport speaks HTTP/1.x only; the request demands HTTP/%d.%d" major minor)
        | _ -> Ok Http11

    /// How to reach a request with this URI scheme, with or without a forward proxy.
    let route (scheme: string) (hasProxy: bool) =
        match hasProxy, scheme with
        | false, _ -> Direct
        | true, "https" -> Tunnel
        | true, _ -> ThroughProxy

    /// True when the request line must carry the absolute-form target on this route.
    let absoluteForm (route: Route) = route = ThroughProxy

    /// True when the connection is made to the proxy, not to the server.
    let connectsToProxy (route: Route) = route <> Direct

    /// The fields whose presence makes a request safe to send again whatever its method.
    let idempotencyKeyFields = [| "Idempotency-Key"; "X-Idempotency-Key" |]

    /// True when a request may be sent a second time (after an attempt that failed before any
    /// response byte arrived): an idempotent method (RFC 9110 section 9.2.2) or an idempotency key,
    /// and a body that can be sent again.
    let mayResend (method: string) (hasIdempotencyKey: bool) (bodyReplayable: bool) =
        (Message.isIdempotent method || hasIdempotencyKey) && bodyReplayable

    /// True when a request whose attempt failed may be sent again on a fresh connection (Go's
    /// rule): the connection was reused and died before one byte of the response arrived (a
    /// server may close an idle connection just as a request goes out), and the request may be
    /// repeated: an idempotent method (RFC 9110 section 9.2.2) or an idempotency key, and a body
    /// that can be sent again.
    let shouldRetry (f: FailedAttempt) =
        f.ConnectionReused
        && f.ConnectionLost
        && not f.GotResponseBytes
        && mayResend f.Method f.HasIdempotencyKey f.BodyReplayable

    /// True when an idle connection is checked (a poll) for a close or stray bytes from the peer
    /// before a request goes out on it. A request that may not be sent again (`mayResend`) is
    /// always checked. One that may is checked only once the connection sat idle for `probeAfter`:
    /// peers close idle connections (or send a 408 first) after seconds of idleness, not at once,
    /// and should one do so sooner, the request is sent again on a new connection (`shouldRetry`),
    /// as Go's Transport does. Zero checks every reuse.
    let probesIdleConnection (idleFor: System.TimeSpan) (probeAfter: System.TimeSpan) (resendable: bool) =
        // Ticks, not the TimeSpans: F#'s generic comparison would box both on every reuse.
        not resendable || idleFor.Ticks >= probeAfter.Ticks
