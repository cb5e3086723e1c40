namespace HttpUtil.Core

open System
open System.Text

/// Where one header field of a message being forwarded goes.
type FieldFate =
    /// Copied as it is.
    | Forward = 0
    /// Not forwarded: hop-by-hop, named by `Connection`, or a client-sent `Forwarded`/`X-Forwarded-*`
    /// under `Rewrite`.
    | Drop = 1
    /// Not copied as a field because the body carries it: the forwarded request's `Content-Length`
    /// comes from the body that is actually sent.
    | Framing = 2

/// What a proxy must know of one message's own fields before it forwards the others: the options its
/// `Connection` fields name, the protocol it asks to upgrade to, whether it asked for trailers, and
/// whether client-sent forwarding fields are dropped. Build it with `Forwarding.planRequest` or
/// `Forwarding.planResponse`.
[<Sealed>]
type HopPlan internal (tokens: string[], upgrade: string | null, teTrailers: bool, dropsForwarded: bool) =
    /// The connection options named by the message's `Connection` fields, as sent.
    member _.ConnectionTokens = tokens
    /// The protocol of an upgrade (the `Upgrade` field when `Connection` lists `upgrade`), or null.
    member _.Upgrade = upgrade
    /// True when the request's `Te` lists `trailers` (it is sent on as `Te: trailers`).
    member _.TeTrailers = teTrailers
    /// True when client-sent `Forwarded` and `X-Forwarded-*` fields are dropped (the `Rewrite` hook).
    member _.DropsForwarded = dropsForwarded

/// How often the proxy flushes a response body to the client.
type FlushMode =
    /// When its buffer is full, at the end, and whenever the upstream pauses.
    | Buffered = 0
    /// After every write.
    | EveryWrite = 1
    /// As `Buffered`, except that after a pause bytes wait up to the interval for more to join them.
    | Periodic = 2

/// What a forwarded request field is to the proxy when it builds the outgoing fields itself.
type FieldRole =
    /// Copied as the core's fate says.
    | Ordinary = 0
    /// `Host`: written first, from the outgoing request's own Host.
    | Host = 1
    /// `X-Forwarded-For`: the client's address is appended to it.
    | ForwardedFor = 2

/// Every forwarding decision of a reverse proxy (Go's `httputil.ReverseProxy`), as pure functions:
/// which fields travel, which are added, how the upstream URL is built, when a response is flushed,
/// whether a protocol switch is accepted.
///
/// | rule | request | response |
/// | --- | --- | --- |
/// | hop-by-hop fields (`Connection`, `Proxy-Connection`, `Keep-Alive`, `Proxy-Authenticate`, `Proxy-Authorization`, `Te`, `Trailer`, `Transfer-Encoding`, `Upgrade`) | dropped | dropped |
/// | fields named by any `Connection` field | dropped | dropped |
/// | `Te: trailers` | sent on when the client's `Te` lists it | |
/// | `Upgrade` | sent on with `Connection: Upgrade` for an upgrade | kept on a 101 |
/// | `Forwarded`, `X-Forwarded-*` sent by the client | dropped before `Rewrite`; kept with `Director` | |
/// | `X-Forwarded-For` | client address appended (Director) or set by `SetXForwarded` | |
/// | `Content-Length` | taken from the body sent | kept |
/// | `User-Agent` | never added | |
module Forwarding =
    let private same (a: string) (b: string) =
        String.Equals(a, b, StringComparison.OrdinalIgnoreCase)

    /// The hop-by-hop fields of RFC 9110 section 7.6.1 and the older ones Go also removes. `Trailer` is
    /// among them, as in Go: a proxy announces only the trailers it will forward.
    let hopByHop =
        [|
            "Connection"
            "Proxy-Connection"
            "Keep-Alive"
            "Proxy-Authenticate"
            "Proxy-Authorization"
            "Te"
            "Trailer"
            "Transfer-Encoding"
            "Upgrade"
        |]

    /// The fields a client may send to say where a request came from, dropped before `Rewrite`.
    let forwardingFields =
        [| "Forwarded"; "X-Forwarded-For"; "X-Forwarded-Host"; "X-Forwarded-Proto" |]

    let private isIn (names: string[]) (name: string) =
        let mutable found = false
        let mutable i = 0

        while not found && i < names.Length do
            found <- same names[i] name
            i <- i + 1

        found

    /// True for a hop-by-hop field name (see `hopByHop`).
    let isHopByHop (name: string) =
        // Every name in the list is 2 to 19 characters long and starts with C, P, K, T or U.
        name.Length >= 2 && name.Length <= 19 && isIn hopByHop name

    let private splitList (value: string | null) =
        match value with
        | null -> Array.Empty<string>()
        | v ->
            v.Split(',', StringSplitOptions.TrimEntries ||| StringSplitOptions.RemoveEmptyEntries)
            |> Array.map (fun s -> s.Trim('\t'))
            |> Array.filter (fun s -> s.Length > 0)

    /// True when the comma-separated `value` lists `token` (case-insensitively).
    let listHas (token: string) (value: string | null) =
        match value with
        | null -> false
        | v -> Headers.listHas token v

    let private noHops = HopPlan(Array.Empty(), null, false, false)
    let private noHopsRewrite = HopPlan(Array.Empty(), null, false, true)

    /// The upgrade a message asks for: its `Upgrade` field when its `Connection` lists `upgrade`, else null.
    let upgradeOf (connection: string | null) (upgrade: string | null) : string | null =
        if listHas "upgrade" connection then
            match upgrade with
            | null -> ""
            | u -> u
        else
            null

    /// The plan for a request whose `Connection`, `Upgrade` and `Te` fields are these (values joined with
    /// commas, null when absent). `rewrite`: client-sent forwarding fields are dropped.
    let planRequest (connection: string | null) (upgrade: string | null) (te: string | null) (rewrite: bool) =
        let tokens = splitList connection
        let up = upgradeOf connection upgrade
        let trailers = listHas "trailers" te

        if tokens.Length = 0 && isNull up && not trailers then
            if rewrite then noHopsRewrite else noHops
        else
            HopPlan(tokens, up, trailers, rewrite)

    /// The plan for a response whose `Connection` and `Upgrade` fields are these.
    let planResponse (connection: string | null) (upgrade: string | null) =
        let tokens = splitList connection
        let up = upgradeOf connection upgrade

        if tokens.Length = 0 && isNull up then
            noHops
        else
            HopPlan(tokens, up, false, false)

    let private namedByConnection (plan: HopPlan) (name: string) = isIn plan.ConnectionTokens name

    /// Where the request field `name` goes (see the table above). `Te` and `Upgrade` are dropped here and
    /// added back by `requestAdditions` when they apply.
    let requestFieldFate (plan: HopPlan) (name: string) =
        if isHopByHop name || namedByConnection plan name then
            FieldFate.Drop
        elif plan.DropsForwarded && isIn forwardingFields name then
            FieldFate.Drop
        elif same name "Content-Length" then
            FieldFate.Framing
        else
            FieldFate.Forward

    /// Where the response field `name` goes: hop-by-hop fields and those named by `Connection` are
    /// dropped, except `Upgrade` on a protocol switch (`switching`).
    let responseFieldFate (plan: HopPlan) (switching: bool) (name: string) =
        if switching && same name "Upgrade" then
            FieldFate.Forward
        elif isHopByHop name || namedByConnection plan name then
            FieldFate.Drop
        else
            FieldFate.Forward

    /// What the field `name` is to a proxy building the outgoing fields (see `FieldRole`).
    let fieldRole (name: string) =
        if same name "Host" then FieldRole.Host
        elif same name "X-Forwarded-For" then FieldRole.ForwardedFor
        else FieldRole.Ordinary

    /// True for a response that switches protocols (`101`): the exchange becomes a tunnel once `checkSwitch` agrees.
    let switchesProtocols (status: int) = status = 101

    /// One field line's value for a field that arrived as several (HTTP/2 splits `Cookie` into pieces): `Cookie`
    /// pieces joined with `; ` (RFC 9113 section 8.2.3), other values with `, ` (RFC 9110 section 5.3).
    let joinValues (name: string) (values: string[]) =
        String.Join((if same name "Cookie" then "; " else ", "), values)

    /// The fields the proxy adds to a forwarded request after the hop-by-hop ones were dropped:
    /// `Te: trailers` when the client asked for trailers, and `Connection: Upgrade` with the `Upgrade`
    /// field for an upgrade.
    let requestAdditions (plan: HopPlan) : HeaderField[] =
        match plan.Upgrade with
        | null when plan.TeTrailers -> [| { Name = "Te"; Value = "trailers" } |]
        | null -> Array.Empty()
        | up ->
            [|
                if plan.TeTrailers then
                    { Name = "Te"; Value = "trailers" }
                {
                    Name = "Connection"
                    Value = "Upgrade"
                }
                { Name = "Upgrade"; Value = up }
            |]

    /// The trailer names a response announces in its `Trailer` fields (values joined with commas), which a
    /// proxy announces again when it can forward trailers.
    let announcedTrailers (trailer: string | null) = splitList trailer

    let private isPrintable (s: string) =
        CharClass.forAll (fun c -> c >= ' ' && c < '\x7f') s

    /// Null when a request's upgrade can be forwarded; else why not (Go refuses a protocol name that is
    /// not printable ASCII).
    let checkRequestUpgrade (plan: HopPlan) : string | null =
        match plan.Upgrade with
        | null -> null
        | up when isPrintable up -> null
        | up -> $"the client asked to switch to an invalid protocol %A{up}"

    /// Null when a `101 Switching Protocols` with `responseUpgrade` (see `upgradeOf`) answers a request
    /// that asked for `requested`; else the reason it must become a 502.
    let checkSwitch (requested: string | null) (responseUpgrade: string | null) : string | null =
        match requested, responseUpgrade with
        | null, _ -> "the upstream switched protocols, but the client did not ask for an upgrade"
        | _, null -> "the upstream switched protocols without naming one in Connection and Upgrade"
        | _, got when not (isPrintable got) -> $"the upstream switched to an invalid protocol %A{got}"
        | asked, got when not (same asked got) ->
            $"the upstream tried to switch to %A{got} when %A{asked} was requested"
        | _ -> null

    /// `X-Forwarded-For` after appending `client` to what the request carried (`prior`, null when none).
    let appendForwardedFor (prior: string | null) (client: string) =
        match prior with
        | null
        | "" -> client
        | p -> p + ", " + client

    /// `X-Forwarded-Proto`: `https` for a request that arrived over TLS, else `http`.
    let forwardedProto (tls: bool) = if tls then "https" else "http"

    let private isToken (s: string) = s.Length > 0 && CharClass.isToken s

    let private quoted (s: string) =
        let b = StringBuilder(s.Length + 2)
        b.Append('"') |> ignore

        for c in s do
            if c = '"' || c = '\\' then
                b.Append('\\') |> ignore

            b.Append(c) |> ignore

        b.Append('"').ToString()

    let private pair (name: string) (value: string) =
        name + "=" + (if isToken value then value else quoted value)

    /// One RFC 7239 `Forwarded` element: `for` (an IPv6 address bracketed and quoted), `host` and `proto`.
    let forwardedElement (client: string) (host: string | null) (proto: string) =
        let forValue =
            if client.Contains(':') && not (client.StartsWith('[')) then
                "[" + client + "]"
            else
                client

        let parts =
            [|
                pair "for" forValue
                match host with
                | null
                | "" -> ()
                | h -> pair "host" h
                pair "proto" proto
            |]

        String.Join(";", parts)

    /// `Forwarded` after appending `element` to what the request carried.
    let appendForwarded (prior: string | null) (element: string) =
        match prior with
        | null
        | "" -> element
        | p -> p + ", " + element

    let private splitTargetSlow (target: string) : struct (string * string) =
        let pathStart =
            if target.StartsWith('/') then
                0
            else
                let scheme = target.IndexOf("://", StringComparison.Ordinal)

                if scheme < 0 then
                    -1
                else
                    let slash = target.IndexOfAny([| '/'; '?' |], scheme + 3)
                    if slash < 0 then target.Length else slash

        if pathStart < 0 then
            struct (target, "")
        else
            let rest = target.AsSpan(pathStart)
            let q = rest.IndexOf('?')

            let path, query =
                if q < 0 then
                    rest.ToString(), ""
                else
                    rest.Slice(0, q).ToString(), rest.Slice(q + 1).ToString()

            struct ((if path.Length = 0 then "/" else path), query)

    /// Splits a request-target into its path and query (without the `?`). An absolute-form target gives
    /// the path and query of its URI; an empty path becomes `/`.
    let splitTarget (target: string) : struct (string * string) =
        if target.Length > 0 && target[0] = '/' && target.IndexOf('?') < 0 then
            struct (target, "")
        else
            splitTargetSlow target

    /// The upstream path: the target's path and the request's joined with exactly one slash between them
    /// (both in their escaped form, so `%2F` stays as sent).
    let joinPath (targetPath: string) (requestPath: string) =
        let a = targetPath.EndsWith('/')
        let b = requestPath.StartsWith('/')

        if a && b && targetPath.Length = 1 then requestPath
        elif a && b then targetPath + requestPath.Substring(1)
        elif not a && not b then targetPath + "/" + requestPath
        else targetPath + requestPath

    /// The upstream query: the target's and the request's, joined with `&` when both are present.
    let joinQuery (targetQuery: string) (requestQuery: string) =
        if targetQuery.Length = 0 || requestQuery.Length = 0 then
            targetQuery + requestQuery
        else
            targetQuery + "&" + requestQuery

    let private hasBadEscape (s: string) =
        let mutable bad = false
        let mutable i = 0

        while not bad && i < s.Length do
            if s[i] = '%' then
                bad <- i + 2 >= s.Length || not (CharClass.isHex s[i + 1] && CharClass.isHex s[i + 2])

            i <- i + 1

        bad

    /// Null when a query can be forwarded as it is; else the query without the parameters an upstream
    /// might split differently from the proxy: one holding a `;` (Go no longer splits on it, older servers
    /// do) or a `%` not followed by two hex digits. The parameters kept keep their order and bytes.
    let sanitizeQuery (query: string) : string | null =
        if query.IndexOf(';') < 0 && not (hasBadEscape query) then
            null
        else
            query.Split('&')
            |> Array.filter (fun p -> p.Length > 0 && p.IndexOf(';') < 0 && not (hasBadEscape p))
            |> fun kept -> String.Join("&", kept)

    let private mediaTypeIs (expected: string) (contentType: string | null) =
        match contentType with
        | null -> false
        | ct ->
            let semi = ct.IndexOf(';')
            let media = (if semi < 0 then ct.AsSpan() else ct.AsSpan(0, semi)).Trim()
            media.Equals(expected.AsSpan(), StringComparison.OrdinalIgnoreCase)

    /// When a response body is flushed to the client, as Go decides: `configured` is the proxy's
    /// `FlushInterval` (zero: as read; negative: every write; positive: reads may wait that long), overridden to every
    /// write for `text/event-stream` and for a body of unknown length (`contentLength` negative), so
    /// streams reach the client as they are produced.
    let flushMode (configured: TimeSpan) (contentType: string | null) (contentLength: int64) =
        if mediaTypeIs "text/event-stream" contentType || contentLength < 0L then
            FlushMode.EveryWrite
        elif configured.Ticks < 0L then
            FlushMode.EveryWrite
        elif configured.Ticks = 0L then
            FlushMode.Buffered
        else
            FlushMode.Periodic

    let private metric (b: StringBuilder) (name: string) (ms: float) =
        if not (Double.IsNaN ms) then
            if b.Length > 0 then
                b.Append(", ") |> ignore

            b
                .Append(name)
                .Append(";dur=")
                .Append(Math.Round(ms, 3).ToString(Globalization.CultureInfo.InvariantCulture))
            |> ignore

    /// The `Server-Timing` value (W3C Server Timing) for the upstream phases in milliseconds, NaN for a
    /// phase that did not happen (no DNS lookup, a reused connection, no TLS): `dns`, `connect`, `tls`,
    /// `wait` (request written to first response byte) and `total` (until the response head).
    let serverTiming (dns: float) (connect: float) (tls: float) (wait: float) (total: float) =
        let b = StringBuilder(96)
        metric b "dns" dns
        metric b "connect" connect
        metric b "tls" tls
        metric b "wait" wait
        metric b "total" total
        b.ToString()
