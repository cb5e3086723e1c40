using System.Net.Http.Headers;
using System.Net.Security;
using HttpUtil.Core;
using HttpStatusCode = System.Net.HttpStatusCode;

namespace HttpUtil;

/// <summary>Builds the System.Net.Http messages a connection returns for heads read off the wire.</summary>
internal static class MessageMapping
{
    /// <summary>Copies core fields into a message's headers, content headers into the content (made
    /// empty when there is none yet).</summary>
    private static void CopyFields(Headers fields, HttpHeaders headers, ref HttpContent? content)
    {
        foreach (var f in fields.AsSpan())
        {
            if (headers.TryAddWithoutValidation(f.Name, f.Value)) continue;
            content ??= new ByteArrayContent([]);
            content.Headers.TryAddWithoutValidation(f.Name, f.Value);
        }
    }

    /// <summary>The request a <see cref="ServerConn"/> returns for a head read off the wire.</summary>
    public static HttpRequestMessage ToRequest(RequestHead head, WireInfo wire, Stream transport, BodyReadStream? body)
    {
        var request = new WireRequestMessage(new HttpMethod(head.Method), CoreAdapter.RequestUri(head, transport is SslStream), wire)
        {
            Version = CoreAdapter.FromCore(head.Version),
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        HttpContent? content = body is null ? null : new BodyContent(body);
        CopyFields(head.Headers, request.Headers, ref content);
        request.Content = content;
        return request;
    }

    /// <summary>The response a <see cref="ClientConn"/> returns for a head read off the wire.</summary>
    public static HttpResponseMessage ToResponse(ResponseHead head, WireInfo wire, HttpRequestMessage request, BodyReadStream body)
    {
        var response = new WireResponseMessage((HttpStatusCode)head.Status, wire)
        {
            Version = CoreAdapter.FromCore(head.Version),
            ReasonPhrase = head.Reason,
            RequestMessage = request,
        };
        HttpContent? content = new BodyContent(body);
        // A reverse proxy that copies the wire head itself needs no .NET copy of the fields.
        if (request is not ForwardedRequestMessage { SkipsResponseFields: true }) CopyFields(head.Headers, response.Headers, ref content);
        response.Content = content;
        return response;
    }
}
