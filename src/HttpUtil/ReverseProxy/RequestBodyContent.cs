using System.Net;
using Microsoft.AspNetCore.Http;

namespace HttpUtil;

/// <summary>
/// The body of an incoming request, streamed to the upstream through buffers from the proxy's
/// <see cref="IBufferPool"/> (never held whole). It remembers which side failed, so the proxy can tell a
/// client that cut its body short from an upstream that stopped taking it.
/// </summary>
internal sealed class RequestBodyContent(HttpRequest request, IBufferPool pool, int bufferSize) : HttpContent
{
    /// <summary>Set when reading the client's body failed.</summary>
    public Exception? ClientFailure { get; private set; }

    /// <summary>Set when writing to the upstream failed.</summary>
    public Exception? UpstreamFailure { get; private set; }

    /// <summary>True once sending started (it cannot be sent again).</summary>
    public bool Started { get; private set; }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        if (Started) throw new InvalidOperationException("a proxied request body can be sent only once");
        Started = true;
        var buffer = pool.Rent(bufferSize);
        try
        {
            var body = request.Body;
            while (true)
            {
                int n;
                try
                {
                    n = await body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    ClientFailure = ex;
                    throw;
                }
                if (n == 0) break;
                try
                {
                    await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    UpstreamFailure = ex;
                    throw;
                }
            }
        }
        finally
        {
            pool.Return(buffer);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = request.ContentLength ?? -1;
        return length >= 0;
    }
}
