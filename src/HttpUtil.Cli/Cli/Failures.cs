using System.Net.Sockets;
using System.Security.Authentication;

namespace HttpUtil.Cli;

/// <summary>Turns an exception from a request into an exit code and one line for standard error.</summary>
public static class Failures
{
    /// <summary>The exit code and message for <paramref name="error"/>, looking through its inner exceptions for the
    /// cause (a socket error, a TLS failure, a timeout, a malformed message).</summary>
    /// <param name="error">What the request threw.</param>
    /// <param name="what">What was being done, for the message ("GET http://host/").</param>
    /// <returns>The code and the line.</returns>
    public static (ExitCode Code, string Message) Describe(Exception error, string what)
    {
        for (var e = error; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case CliException cli:
                    return (cli.Code, cli.Message);
                case SocketException { SocketErrorCode: SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData or SocketError.NoRecovery } s:
                    return (ExitCode.DnsFailure, $"{what}: the host name did not resolve ({s.Message})");
                case SocketException { SocketErrorCode: SocketError.ConnectionRefused }:
                    return (ExitCode.ConnectionRefused, $"{what}: connection refused (nothing listens there)");
                case SocketException { SocketErrorCode: SocketError.TimedOut }:
                case TimeoutException:
                    return (ExitCode.Timeout, $"{what}: timed out ({e.Message})");
                case AuthenticationException:
                    return (ExitCode.TlsFailure, $"{what}: the TLS handshake failed: {e.Message} (-k accepts any certificate)");
                case MalformedMessageException:
                    return (ExitCode.ProtocolError, $"{what}: the server's answer is not valid HTTP/1.x: {e.Message}");
            }
        }
        return (ExitCode.ConnectionLost, $"{what}: {Innermost(error).Message}");
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }
}
