using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// The request a <see cref="ReverseProxy"/> sends upstream. When no hook needs the .NET header collections, the proxy
/// gives it the core's fields straight from the incoming request (<see cref="Fields"/>, <see cref="Host"/>), and
/// <see cref="Transport"/> writes those instead of reading <c>Headers</c> back; and when nothing reads the response's
/// .NET headers (<see cref="SkipsResponseFields"/>), Transport leaves them empty and the proxy copies the wire head.
/// Any other handler sees an ordinary request (with no fields in <c>Headers</c> on the fast path, so the proxy uses it
/// only with <see cref="Transport"/>).
/// </summary>
internal sealed class ForwardedRequestMessage(HttpMethod method) : HttpRequestMessage(method, (Uri?)null)
{
    /// <summary>The fields to write (without Host), or null to read <c>Headers</c> and the content's headers.</summary>
    public List<HeaderField>? Fields { get; set; }

    /// <summary>The Host to write with <see cref="Fields"/> (null: from the URI).</summary>
    public string? Host { get; set; }

    /// <summary>True when the response's fields need not be copied into its .NET header collections.</summary>
    public bool SkipsResponseFields { get; set; }
}
