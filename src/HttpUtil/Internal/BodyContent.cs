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

/// <summary>
/// The content of a <c>101 Switching Protocols</c> response: the connection itself, readable and writable (as
/// SocketsHttpHandler hands it out). Disposing the content closes the connection.
/// </summary>
internal sealed class SwitchedContent(Stream connection) : HttpContent
{
    protected override Task SerializeToStreamAsync(Stream target, TransportContext? context) => connection.CopyToAsync(target);

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override Task<Stream> CreateContentReadStreamAsync() => Task.FromResult(connection);

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken) => connection;

    protected override void Dispose(bool disposing)
    {
        if (disposing) connection.Dispose();
        base.Dispose(disposing);
    }
}
