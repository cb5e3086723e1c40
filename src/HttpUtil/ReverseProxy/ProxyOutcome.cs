namespace HttpUtil;

/// <summary>What a <see cref="ReverseProxy.Proxy"/> hook decided about one request.</summary>
public enum ProxyOutcome
{
    /// <summary>Send the outgoing request (as the hook left it) to the upstream.</summary>
    Forward = 0,

    /// <summary>The hook answered the client itself; nothing is sent upstream (Go's <c>ErrHandled</c>).</summary>
    Handled = 1,
}
