using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// Why a <see cref="ReverseProxy"/> could not forward a request: the stage and side that failed
/// (<see cref="Error"/>) and the cause (<see cref="Exception.InnerException"/>). Handed to
/// <see cref="ReverseProxy.ErrorHandler"/>; <see cref="Status"/> is what the default handler answers.
/// </summary>
public sealed class ReverseProxyException : Exception
{
    /// <summary>A failure at <paramref name="error"/>.</summary>
    /// <param name="error">The stage and side.</param>
    /// <param name="message">What happened, for a log.</param>
    /// <param name="inner">The cause, if any.</param>
    public ReverseProxyException(ProxyError error, string message, Exception? inner = null)
        : base(message, inner)
    {
        Error = error;
    }

    /// <summary>The stage and side that failed.</summary>
    public ProxyError Error { get; }

    /// <summary>The status to answer when the response has not started (502, 504 or 400); 0 when nothing can be
    /// answered (the client is gone, or the response started and the connection is aborted instead).</summary>
    public int Status => ProxyErrors.status(Error);

    /// <summary>True when the client caused it (it went away, or sent a broken body).</summary>
    public bool IsClientSide => ProxyErrors.isClientSide(Error);
}
