using System.Buffers;
using System.IO.Pipelines;
using HttpStatusCode = System.Net.HttpStatusCode;
using HttpVersion = HttpUtil.Core.HttpVersion;
using System.Net.Http.Headers;
using System.Net.Security;
using HttpUtil.Core;
using Microsoft.FSharp.Core;

namespace HttpUtil;

/// <summary>Maps between System.Net.Http messages and the core's heads, and writes messages.</summary>
internal static class MessageMapping
{
    internal const int FlushThreshold = 128 * 1024;

    public static HttpVersion ToCore(Version v) => v.Major == 1 && v.Minor == 0 ? HttpVersion.Http10 : HttpVersion.Http11;

    public static Version FromCore(HttpVersion v) => v.IsHttp10 ? System.Net.HttpVersion.Version10 : System.Net.HttpVersion.Version11;

    /// <summary>Appends the fields of <paramref name="headers"/> in their order, one line per name
    /// (values joined by the header's own separator), Set-Cookie one line per value.</summary>
    public static void AddFields(List<HeaderField> into, HttpHeaders headers, string? skip = null)
    {
        foreach (var (name, values) in headers.NonValidated)
        {
            if (skip is not null && name.Equals(skip, StringComparison.OrdinalIgnoreCase)) continue;
            if (name.Equals("Set-Cookie", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var v in values) into.Add(new HeaderField(name, v));
            }
            else
            {
                into.Add(new HeaderField(name, values.ToString()));
            }
        }
    }

    /// <summary>Copies core fields into a message's headers, content headers into the content (made
    /// empty when there is none yet).</summary>
    public static void CopyFields(Headers fields, HttpHeaders headers, ref HttpContent? content)
    {
        foreach (var f in fields.AsSpan())
        {
            if (headers.TryAddWithoutValidation(f.Name, f.Value)) continue;
            content ??= new ByteArrayContent([]);
            content.Headers.TryAddWithoutValidation(f.Name, f.Value);
        }
    }

    private static Framing.OutgoingBody Describe(HttpContent? content, bool? chunked)
    {
        if (content is null) return Framing.OutgoingBody.Absent;
        if (chunked == true) return Framing.OutgoingBody.Unknown;
        return content.Headers.ContentLength is long n ? Framing.OutgoingBody.NewKnown(n) : Framing.OutgoingBody.Unknown;
    }

    private static ArgumentException Invalid(string what, HttpError e) => new($"{what}: {e.Message}");

    /// <summary>The head to write for <paramref name="request"/> and how its body is framed; throws
    /// <see cref="ArgumentException"/> when it cannot be put on the wire.</summary>
    public static (RequestHead Head, Framing.BodyLength Plan) ToRequestHead(HttpRequestMessage request, bool absoluteForm)
    {
        var uri = request.RequestUri ?? throw new ArgumentException("the request has no RequestUri", nameof(request));
        var method = request.Method.Method;
        var target = Message.requestTarget(method, absoluteForm, uri);
        var version = ToCore(request.Version);
        var fields = new List<HeaderField>(16);
        var host = request.Headers.Host ?? Message.hostValue(uri);
        if (host.Length > 0) fields.Add(new HeaderField("Host", host));
        AddFields(fields, request.Headers, "Host");
        if (request.Content is { } content) AddFields(fields, content.Headers);
        var plan = Framing.planRequest(version, method, Describe(request.Content, request.Headers.TransferEncodingChunked));
        if (plan.IsError) throw Invalid("the request body cannot be framed", plan.ErrorValue);
        var head = new RequestHead(method, target.Item1, target.Item2, version,
            Framing.withFraming(true, plan.ResultValue, Headers.OfSeq(fields)));
        var valid = Serializer.validateRequest(head);
        if (valid.IsError) throw Invalid("the request cannot be written", valid.ErrorValue);
        return (head, plan.ResultValue);
    }

    /// <summary>The head to write for <paramref name="response"/> to <paramref name="request"/>, how its
    /// body is framed, and whether it ends the connection.</summary>
    public static (ResponseHead Head, Framing.BodyLength Plan, bool Closes) ToResponseHead(HttpRequestMessage request, HttpResponseMessage response)
    {
        var version = ToCore(response.Version);
        var status = (int)response.StatusCode;
        var fields = new List<HeaderField>(16);
        AddFields(fields, response.Headers);
        AddFields(fields, response.Content.Headers);
        var planned = Framing.planResponse(request.Method.Method, ToCore(request.Version), version, status,
            Describe(response.Content, response.Headers.TransferEncodingChunked));
        var head = new ResponseHead(version, status, response.ReasonPhrase ?? "",
            Framing.withFraming(false, planned.Item1, Headers.OfSeq(fields)));
        var valid = Serializer.validateResponse(head);
        if (valid.IsError) throw Invalid("the response cannot be written", valid.ErrorValue);
        // A body that runs until close (planned.Item2) is one of the cases responseClosesWith covers.
        return (head, planned.Item1, Connection.responseClosesWith(head, planned.Item1));
    }

    /// <summary>The request a <see cref="ServerConn"/> returns for a head read off the wire.</summary>
    public static HttpRequestMessage ToRequest(RequestHead head, WireInfo wire, Stream transport, Stream? body)
    {
        var request = new WireRequestMessage(new HttpMethod(head.Method), RequestUri(head, transport is SslStream ? "https" : "http"), wire)
        {
            Version = FromCore(head.Version),
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        HttpContent? content = body is null ? null : new StreamContent(body);
        CopyFields(head.Headers, request.Headers, ref content);
        request.Content = content;
        return request;
    }

    /// <summary>An absolute URI from the target and Host where System.Uri takes it, else a relative
    /// one, else null; the raw target always stays in the wire head.</summary>
    private static Uri? RequestUri(RequestHead head, string scheme)
    {
        Uri? uri = null;
        var ok = head.Form.Tag switch
        {
            TargetForm.Tags.Absolute => Uri.TryCreate(head.Target, UriKind.Absolute, out uri),
            TargetForm.Tags.Authority => Uri.TryCreate($"{scheme}://{head.Target}/", UriKind.Absolute, out uri),
            TargetForm.Tags.Origin when head.Headers.TryGetValue("Host", out var host) && !string.IsNullOrEmpty(host) =>
                Uri.TryCreate($"{scheme}://{host}{head.Target}", UriKind.Absolute, out uri),
            _ => false,
        };
        if (ok) return uri;
        return Uri.TryCreate(head.Target, UriKind.Relative, out uri) ? uri : null;
    }

    /// <summary>The response a <see cref="ClientConn"/> returns for a head read off the wire.</summary>
    public static HttpResponseMessage ToResponse(ResponseHead head, WireInfo wire, HttpRequestMessage request, Stream body)
    {
        var response = new WireResponseMessage((HttpStatusCode)head.Status, wire)
        {
            Version = FromCore(head.Version),
            ReasonPhrase = head.Reason,
            RequestMessage = request,
        };
        HttpContent? content = new StreamContent(body);
        CopyFields(head.Headers, response.Headers, ref content);
        response.Content = content;
        return response;
    }

    /// <summary>Converts .NET headers to core fields (for trailers).</summary>
    public static Headers ToFields(HttpHeaders headers)
    {
        var fields = new List<HeaderField>();
        AddFields(fields, headers);
        return Headers.OfSeq(fields);
    }

    /// <summary>
    /// Writes a body as planned into the output pipe (see <see cref="BodyWriteStream"/> for framing and
    /// flushing), then for chunked bodies the last chunk with <paramref name="trailers"/>. The last bytes
    /// are left unflushed: the caller flushes. A body shorter or longer than its Content-Length throws
    /// <see cref="IOException"/>: the connection can no longer be framed.
    /// </summary>
    public static async ValueTask WriteBodyAsync(PipeWriter writer, HttpContent? content, Framing.BodyLength plan, Func<Headers>? trailers,
        CancellationToken ct)
    {
        if (content is null || plan.IsNoBody || (plan is Framing.BodyLength.ContentLength { Item: 0 })) return;
        // CopyToAsync serializes the content afresh each time (so a retried request sends it again) and
        // hands its bytes over as it produces them.
        var body = new BodyWriteStream(writer, plan, content is ByteArrayContent or ReadOnlyMemoryContent);
        await content.CopyToAsync(body, ct).ConfigureAwait(false);
        body.Finish();
        if (plan.IsChunked)
        {
            var last = Chunked.lastChunk(trailers?.Invoke() ?? Headers.Empty);
            if (last.IsError) throw new InvalidOperationException($"the trailers cannot be written: {last.ErrorValue.Message}");
            writer.Write(last.ResultValue);
        }
    }

    public static async ValueTask FlushAsync(PipeWriter writer, CancellationToken ct)
    {
        var r = await writer.FlushAsync(ct).ConfigureAwait(false);
        if (r.IsCanceled) throw new OperationCanceledException("the flush was cancelled");
    }
}
