using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace HttpUtil;

/// <summary>Maps a <see cref="ReverseProxy"/> into ASP.NET Core routing.</summary>
public static class ReverseProxyEndpoints
{
    /// <summary>Sends every request matching <paramref name="pattern"/> (any method) through <paramref name="proxy"/>,
    /// for example <c>app.MapReverseProxy("/{**rest}", proxy)</c>.</summary>
    /// <param name="endpoints">The application's routes.</param>
    /// <param name="pattern">A route pattern; use a catch-all parameter to match every path below it.</param>
    /// <param name="proxy">The proxy.</param>
    /// <returns>The endpoint's builder, to add metadata.</returns>
    public static IEndpointConventionBuilder MapReverseProxy(this IEndpointRouteBuilder endpoints, string pattern, ReverseProxy proxy)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(proxy);
        return endpoints.Map(pattern, proxy.ServeHttpAsync);
    }
}
