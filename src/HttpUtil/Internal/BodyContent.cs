using System.Net;

namespace HttpUtil;

/// <summary>
/// The content of a message read off the wire: its <see cref="BodyReadStream"/>, handed out as it is (no wrapper
/// stream, no buffering). Disposing the content disposes the body, which lets the connection drain it and move on.
/// </summary>
internal sealed class BodyContent(BodyReadStream body) : HttpContent
{
    private Task<Stream>? stream;

    protected override Task SerializeToStreamAsync(Stream target, TransportContext? context) => body.CopyToAsync(target);

    protected override Task SerializeToStreamAsync(Stream target, TransportContext? context, CancellationToken cancellationToken) =>
        body.CopyToAsync(target, cancellationToken);

    protected override void SerializeToStream(Stream target, TransportContext? context, CancellationToken cancellationToken) =>
        body.CopyTo(target);

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override Task<Stream> CreateContentReadStreamAsync() => stream ??= Task.FromResult<Stream>(body);

    protected override Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) => CreateContentReadStreamAsync();

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken) => body;

    protected override void Dispose(bool disposing)
    {
        if (disposing) body.Dispose();
        base.Dispose(disposing);
    }
}
