namespace HttpUtil.Core

/// `Expect: 100-continue` and interim responses, for both roles, in one place (RFC 9110 sections
/// 10.1.1 and 15.2).
///
/// Client: a request that expects 100-continue sends its head, then waits for the server's answer
/// before its body, but only when that request's response is the next to be read (otherwise the
/// bytes that arrive belong to an earlier response, and the body goes at once). `100 Continue`
/// releases the body; a final response first means the body is never sent and the connection
/// cannot carry another request; no answer within the timeout sends the body anyway. Other 1xx
/// responses are read past, reported, and counted against `Limits.MaxInterimResponses` and the
/// head size limit.
///
/// Server: a request that expects 100-continue gets `100 Continue` when its handler first reads
/// the body, if every earlier response has been written (the interim response takes the
/// response turn briefly). A request answered without it leaves its body unread on the wire, so
/// that response ends the connection.
module Continue =
    /// True when an HTTP/1.1 request waits for `100 Continue` before sending its body.
    let expects (head: RequestHead) =
        head.Version = Http11
        && (match Headers.tryGet "Expect" head.Headers with
            | Some v ->
                System.String.Equals(v.Trim(' ', '\t'), "100-continue", System.StringComparison.OrdinalIgnoreCase)
            | None -> false)

    /// True for an interim response a client reads past on its way to the final one: 1xx except
    /// 101 Switching Protocols, which is final.
    let isInterim (status: int) =
        status >= 100 && status < 200 && status <> 101

    /// The `100 Continue` head a server writes.
    let head =
        {
            Version = Http11
            Status = 100
            Reason = "Continue"
            Headers = Headers.Empty
        }

    /// Client: true when the request of `slot` may wait for `100 Continue` before its body: its
    /// response is the next to be read and no read runs.
    let clientMayWait (slot: int) (responses: Lane) = Pipeline.isFree slot responses

    /// Server: true when `100 Continue` may be written now for the request of `slot`: it expects
    /// one that was not sent, its response turn has come with nothing writing, and the connection
    /// can still write.
    let serverMaySend (slot: int) (awaiting: Set<int>) (responses: Lane) (writing: Side) (life: Life) =
        awaiting.Contains slot
        && Pipeline.isFree slot responses
        && writing = Open
        && life = Live

    /// Server: true when the response to the request of `slot` ends the connection because the
    /// request still waits for `100 Continue` (its body may follow, unread).
    let answerEnds (slot: int) (awaiting: Set<int>) =
        not awaiting.IsEmpty && awaiting.Contains slot

    /// Client: counts one more interim response of `headBytes` bytes, after `count` of them
    /// totalling `bytes`. Their number is bounded by `MaxInterimResponses` and their bytes, with
    /// the final head's, by `MaxHeadBytes` (as Go bounds 1xx bytes by its header limit); past
    /// either, the response is refused.
    let countInterim (limits: Limits) (count: int) (bytes: int64) (headBytes: int64) =
        let count = count + 1
        let bytes = bytes + headBytes

        if count > limits.MaxInterimResponses then
            Error(
                HttpError.create
                    ErrorKind.TooManyInterimResponses
                    bytes
                    (sprintf
                        "more than %d interim (1xx) responses before the final one (limit MaxInterimResponses)"
                        limits.MaxInterimResponses)
            )
        elif bytes > int64 limits.MaxHeadBytes then
            Error(
                HttpError.create
                    ErrorKind.TooManyInterimResponses
                    bytes
                    (sprintf
                        "interim (1xx) responses larger than %d bytes in all (limit MaxHeadBytes)"
                        limits.MaxHeadBytes)
            )
        else
            Ok(struct (count, bytes))
