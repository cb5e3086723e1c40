using System.Net.Sockets;
using System.Security.Authentication;

namespace HttpUtil;

/// <summary>The <c>error.type</c> attribute for a failed client request, named as <c>System.Net.Http</c> names them.</summary>
internal static class ErrorTypes
{
    /// <summary>The value for <paramref name="error"/>, found by looking through its inner exceptions for the cause.</summary>
    public static string Of(Exception error)
    {
        for (var e = error; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case SocketException { SocketErrorCode: SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData or SocketError.NoRecovery }:
                    return "name_resolution_error";
                case SocketException:
                    return "connection_error";
                case AuthenticationException:
                    return "secure_connection_error";
                case TimeoutException:
                    return "timeout";
                case MalformedMessageException:
                    return "http_protocol_error";
                case ConnectionClosedException or PersistEofException or EndOfStreamException:
                    return "response_ended";
            }
        }
        return error.GetType().FullName ?? error.GetType().Name;
    }
}
