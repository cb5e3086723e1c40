namespace HttpUtil.Cli;

/// <summary>
/// The process exit codes of <c>httputil</c>: one per kind of failure a user can cause, so that scripts can
/// tell them apart. <c>--help</c> lists them (from <see cref="ExitCodes.Help"/>).
/// </summary>
public enum ExitCode
{
    /// <summary>Everything worked.</summary>
    Ok = 0,
    /// <summary>The command ran and found a failure: <c>parse</c> read an invalid message, a <c>demo</c> step misbehaved.</summary>
    Failed = 1,
    /// <summary>A bad flag, a missing argument, or an option value that does not parse.</summary>
    Usage = 2,
    /// <summary>The URL is not an absolute http or https URL.</summary>
    BadUrl = 3,
    /// <summary>A file named on the command line (<c>-d @file</c>, <c>parse FILE</c>) cannot be read.</summary>
    BadFile = 4,
    /// <summary>The host name did not resolve.</summary>
    DnsFailure = 5,
    /// <summary>The server refused the connection (nothing listens there).</summary>
    ConnectionRefused = 6,
    /// <summary>The TLS handshake failed (an untrusted or mismatched certificate: try <c>-k</c>).</summary>
    TlsFailure = 7,
    /// <summary>The request took longer than <c>--max-time</c>, or a connection deadline passed.</summary>
    Timeout = 8,
    /// <summary>The server answered with something that is not valid HTTP/1.x.</summary>
    ProtocolError = 9,
    /// <summary>The connection failed part way (reset, closed early).</summary>
    ConnectionLost = 10,
    /// <summary><c>proxy</c>: the address to listen on is taken or cannot be bound.</summary>
    AddressInUse = 11,
}

/// <summary>The exit codes as <c>--help</c> shows them.</summary>
public static class ExitCodes
{
    /// <summary>One line per code: number, name, meaning.</summary>
    public const string Help =
        "Exit codes: 0 ok; 1 failed (invalid message in parse, a demo step); 2 usage (bad flag or value); 3 bad URL; " +
        "4 unreadable file; 5 DNS failure; 6 connection refused; 7 TLS failure; 8 timeout; 9 protocol error (not HTTP/1.x); " +
        "10 connection lost; 11 listen address in use.";
}

/// <summary>A failure the user caused, to be shown as one line on standard error with its exit code.</summary>
/// <param name="code">The exit code.</param>
/// <param name="message">The line (without the <c>httputil:</c> prefix).</param>
public sealed class CliException(ExitCode code, string message) : Exception(message)
{
    /// <summary>The exit code.</summary>
    public ExitCode Code { get; } = code;
}
