namespace HttpUtil.Core

/// The stage and side at which forwarding one request failed, as a reverse proxy reports it to its
/// error handler. Each kind says what the client should get: a status (502 or 504), nothing (it went
/// away), or an aborted connection (the response had already started).
type ProxyError =
    /// The incoming request cannot be forwarded as it is (for example an `Upgrade` token that is not
    /// printable ASCII). Answer 502, as Go does.
    | InvalidRequest = 1
    /// A user hook (`Proxy`, `Rewrite` or `Director`) threw. Answer 502.
    | Hook = 2
    /// Connecting to the upstream, or sending the request head, failed; or the upstream's response head
    /// was malformed. Answer 502.
    | Upstream = 3
    /// The upstream did not answer within the proxy's upstream timeout. Answer 504.
    | UpstreamTimeout = 4
    /// The client went away (or aborted) before the response started. Nothing can be answered; not an error
    /// of the proxy, so it is not logged as one.
    | ClientCanceled = 5
    /// Reading the client's request body failed (it was cut short or malformed). Answer 400 when the
    /// response has not started.
    | RequestBodyClient = 6
    /// Sending the request body to the upstream failed. Answer 502.
    | RequestBodyUpstream = 7
    /// `ModifyResponse` threw. Answer 502.
    | ModifyResponse = 8
    /// The upstream's response body failed after the head had been forwarded: the client's connection is
    /// aborted, so a truncated body is never taken for a complete one.
    | ResponseBodyUpstream = 9
    /// Writing the response body to the client failed (the client went away). Nothing more can be sent.
    | ResponseBodyClient = 10
    /// The upstream answered an upgrade request with `101` and a different protocol than the client asked
    /// for (or with a 101 the client did not ask for). Answer 502.
    | UpgradeMismatch = 11
    /// The upstream switched protocols but the front server cannot (an HTTP/2 front, or no upgrade feature).
    /// Answer 502.
    | UpgradeUnavailable = 12
    /// A tunnel after `101 Switching Protocols` failed on one side. The connection is closed.
    | UpgradeTunnel = 13
    /// The client's request body is larger than the proxy (or its host) accepts. Answer 413.
    | RequestBodyTooLarge = 14

/// What a proxy answers for each `ProxyError`.
module ProxyErrors =
    /// The status the client gets when the response has not started yet; 0 when nothing can be sent
    /// (the client is gone, or the response already started and the connection must be aborted instead).
    let status (error: ProxyError) =
        match error with
        | ProxyError.UpstreamTimeout -> 504
        | ProxyError.RequestBodyClient -> 400
        | ProxyError.RequestBodyTooLarge -> 413
        | ProxyError.ClientCanceled
        | ProxyError.ResponseBodyClient
        | ProxyError.ResponseBodyUpstream
        | ProxyError.UpgradeTunnel -> 0
        | _ -> 502

    /// True when the failure is the client's doing (it went away or sent a broken body): logged at
    /// Debug level, not as an error of the proxy.
    let isClientSide (error: ProxyError) =
        match error with
        | ProxyError.ClientCanceled
        | ProxyError.ResponseBodyClient
        | ProxyError.RequestBodyTooLarge
        | ProxyError.RequestBodyClient -> true
        | _ -> false

    /// The error for a client body that failed while being read: too large when the front server refused it with
    /// 413 (`frontStatus`, 0 when it gave none), else broken.
    let ofClientBody (frontStatus: int) =
        if frontStatus = 413 then
            ProxyError.RequestBodyTooLarge
        else
            ProxyError.RequestBodyClient

    /// True when a request announcing `contentLength` bytes (negative: unknown) must be refused at once under a
    /// body limit of `limit` bytes (negative: none), before anything is sent upstream.
    let refusesBody (limit: int64) (contentLength: int64) = limit >= 0L && contentLength > limit

    /// True when the client's connection must be aborted because a response already started
    /// and cannot be finished truthfully.
    let abortsClient (error: ProxyError) =
        match error with
        | ProxyError.ResponseBodyUpstream
        | ProxyError.UpgradeTunnel -> true
        | _ -> false
