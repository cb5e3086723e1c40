namespace HttpUtil.Core

open System

/// The two HTTP versions this library speaks. Named `Http1Version` so that it does not collide with
/// `System.Net.HttpVersion` in C# files that use both.
type Http1Version =
    /// HTTP/1.0: connections close after each exchange unless keep-alive is negotiated.
    | Http10
    /// HTTP/1.1: persistent connections by default.
    | Http11

    /// The version as it is written on the wire ("HTTP/1.0" or "HTTP/1.1").
    member this.Text =
        match this with
        | Http10 -> "HTTP/1.0"
        | Http11 -> "HTTP/1.1"

/// The four forms of request-target (RFC 9112 section 3.2).
type TargetForm =
    /// `absolute-path [ "?" query ]`, the usual form: "/where?q=now".
    | Origin
    /// `absolute-URI`, sent to proxies: "http://www.example.org/pub/WWW/TheProject.html".
    | Absolute
    /// `uri-host ":" port`, only for CONNECT: "www.example.com:80".
    | Authority
    /// `"*"`, only for a server-wide OPTIONS.
    | Asterisk

/// A request's start line and fields, exactly as on the wire.
type RequestHead =
    {
        /// The method token, case preserved ("GET", "PROPFIND"...).
        Method: string
        /// The raw request-target, byte for byte (never decoded or normalized).
        Target: string
        /// Which of the four forms `Target` is in.
        Form: TargetForm
        /// The protocol version.
        Version: Http1Version
        /// The field lines, in order, names as received.
        Headers: Headers
    }

/// A response's status line and fields, exactly as on the wire.
type ResponseHead =
    {
        /// The protocol version.
        Version: Http1Version
        /// The three-digit status code, 100 to 999.
        Status: int
        /// The reason phrase, possibly empty.
        Reason: string
        /// The field lines, in order, names as received.
        Headers: Headers
    }

/// A parsed head together with the exact text it was parsed from. Two are equal when their heads
/// and texts are.
[<Sealed>]
type Parsed<'Head when 'Head: equality>(head: 'Head, length: int, text: string | null, rebuild: 'Head -> string) =
    let mutable raw = text

    /// The head.
    member _.Head = head

    /// The head's bytes as Latin-1 text (one char per byte), from the start line up to and
    /// including the empty line that ends it. Leading empty lines skipped before a request-line
    /// are not included. A head read in canonical form (what the serializer writes) is not decoded
    /// for every message: its text is what serializing the head gives, built here on first use.
    member _.Raw =
        match raw with
        | null ->
            let r = rebuild head
            raw <- r
            r
        | r -> r

    /// How many bytes the head took (the length of `Raw`), known without building `Raw`.
    member _.Length = length

    override this.Equals(other: obj) =
        match other with
        | :? Parsed<'Head> as p -> this.Head = p.Head && String.Equals(this.Raw, p.Raw)
        | _ -> false

    override this.GetHashCode() = hash this.Head

/// The answer of an incremental parse: more bytes are needed, or a value was read from the
/// first `Consumed` bytes of the input.
[<Struct>]
type Incremental<'T> =
    /// The input ends before the value does; call again with the same bytes and more.
    | NeedMore
    /// The value, read from the first `consumed` bytes of the input.
    | Complete of Value: 'T * Consumed: int64

/// The last `host:port` Host value built on this thread: requests go to the same host and port
/// over and over, and the value is then not built again.
[<Sealed; AllowNullLiteral>]
type internal HostMemo(host: string, port: int, value: string) =
    [<ThreadStatic; DefaultValue>]
    static val mutable private last: HostMemo

    member _.Host = host
    member _.Port = port
    member _.Value = value

    /// `host:port`, built or remembered.
    static member WithPort(host: string, port: int) =
        let last = HostMemo.last

        if not (isNull last) && last.Port = port && String.Equals(last.Host, host) then
            last.Value
        else
            let value = host + ":" + string port
            HostMemo.last <- HostMemo(host, port, value)
            value

/// Helpers for heads.
module Message =
    /// Parses an HTTP-version string: "HTTP/1.0" or "HTTP/1.1" only.
    let tryParseVersion (s: string) =
        match s with
        | "HTTP/1.1" -> Some Http11
        | "HTTP/1.0" -> Some Http10
        | _ -> None

    /// True for methods that are safe and idempotent or idempotent (RFC 9110 section 9.2.2).
    let isIdempotent (m: string) =
        match m with
        | "GET"
        | "HEAD"
        | "OPTIONS"
        | "TRACE"
        | "PUT"
        | "DELETE" -> true
        | _ -> false

    let private isSchemeChar (c: char) =
        (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9')
        || c = '+'
        || c = '-'
        || c = '.'

    /// True when `target` starts with a scheme and a colon (absolute-form).
    let private hasScheme (target: string) =
        let colon = target.IndexOf(':')
        let mutable i = 1

        while i < colon && isSchemeChar target[i] do
            i <- i + 1

        colon > 0 && System.Char.IsAsciiLetter target[0] && i = colon

    /// authority-form: uri-host ":" port with a non-empty port (RFC 9112 section 3.2.3).
    let private isAuthority (target: string) =
        let colon = target.LastIndexOf(':')

        colon > 0
        && colon < target.Length - 1
        && target.AsSpan(colon + 1).IndexOfAnyExceptInRange('0', '9') < 0
        && target.AsSpan(0, colon).IndexOfAny("/?#@") < 0
        && (target[0] <> '[' || target[colon - 1] = ']')

    /// Decides the form of a request-target for a method (RFC 9112 section 3.2), or says why none fits.
    let classifyTarget (method: string) (target: string) : Result<TargetForm, string> =
        if method = "CONNECT" then
            if isAuthority target then
                Ok Authority
            else
                Error "a CONNECT request-target must be in authority-form, host:port (RFC 9112 section 3.2.3)"
        elif target = "*" then
            if method = "OPTIONS" then
                Ok Asterisk
            else
                Error "asterisk-form is only for OPTIONS (RFC 9112 section 3.2.4)"
        elif target.Length > 0 && target[0] = '/' then
            Ok Origin
        elif hasScheme target then
            Ok Absolute
        else
            Error
                "request-target is not in origin-form (/path), absolute-form (scheme:...), authority-form (CONNECT) or asterisk-form (RFC 9112 section 3.2)"

    /// True when a response with `status` to a CONNECT request opens the tunnel: any 2xx
    /// (RFC 9110 section 9.3.6). The connection then carries the tunnel, not HTTP.
    let connectSucceeded (status: int) = status >= 200 && status < 300

    /// The request-target to write for `uri`: authority-form `host:port` for CONNECT,
    /// absolute-form when `absoluteForm` (requests to a forward proxy), origin-form
    /// (path and query, "/" when empty) otherwise. A relative `uri` is written as given, as the
    /// asterisk form when it is "*".
    let requestTarget (requestMethod: string) (absoluteForm: bool) (uri: System.Uri) : struct (string * TargetForm) =
        if not uri.IsAbsoluteUri then
            match uri.OriginalString with
            | "*" -> struct ("*", Asterisk)
            | "" -> struct ("/", Origin)
            | s -> struct (s, Origin)
        elif requestMethod = "CONNECT" then
            struct (uri.GetComponents(
                        System.UriComponents.Host ||| System.UriComponents.StrongPort,
                        System.UriFormat.UriEscaped
                    ),
                    Authority)
        elif absoluteForm then
            struct (uri.GetComponents(System.UriComponents.HttpRequestUrl, System.UriFormat.UriEscaped), Absolute)
        else
            match uri.PathAndQuery with
            | "" -> struct ("/", Origin)
            | p -> struct (p, Origin)

    /// The Host field value for `uri` (RFC 9110 section 7.2): the host in ASCII (IDN encoded) and
    /// the port when it is not the scheme's default. Empty for a relative `uri`.
    let hostValue (uri: System.Uri) =
        if not uri.IsAbsoluteUri then
            ""
        else
            let host =
                if uri.HostNameType = System.UriHostNameType.IPv6 then
                    "[" + uri.IdnHost + "]"
                else
                    uri.IdnHost

            if uri.IsDefaultPort then
                host
            else
                HostMemo.WithPort(host, uri.Port)

    /// The effective request URI of a request a server read (RFC 9112 section 3.3), as text: an
    /// absolute-form target as it is, an authority-form one as `scheme://target/`, an origin-form
    /// one as `scheme://Host` followed by the target. Empty for asterisk-form, and for origin-form
    /// without a (non-empty) Host: the caller keeps the target as a relative reference then.
    /// `scheme` is the connection's: "https" over TLS, "http" otherwise.
    let effectiveUri (scheme: string) (head: RequestHead) =
        match head.Form with
        | Absolute -> head.Target
        | Authority -> scheme + "://" + head.Target + "/"
        | Origin ->
            match head.Headers.TryGetValue "Host" with
            | true, host when not (System.String.IsNullOrEmpty host) -> scheme + "://" + host + head.Target
            | _ -> ""
        | Asterisk -> ""
