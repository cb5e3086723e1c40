using System.Buffers;
using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// The stream an outgoing <see cref="HttpContent"/> is serialized into: it frames the bytes as planned
/// (as they are, or as chunks) into the connection's output pipe. With a Content-Length it refuses
/// more bytes than announced and <see cref="Finish"/> refuses fewer: the connection could no longer be
/// framed. Content that may wait between writes (anything but in-memory content) is flushed after every
/// write so it streams; in-memory content every 128 KiB.
/// </summary>
internal sealed class BodyWriteStream(PipeWriter writer, Framing.BodyLength plan, bool inMemory) : Stream
{
    private long written;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException("a body being sent has no length as a stream");
    public override long Position
    {
        get => written;
        set => throw new NotSupportedException("a body being sent cannot seek");
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("a body being sent is write-only");
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("a body being sent cannot seek");
    public override void SetLength(long value) => throw new NotSupportedException("a body being sent cannot seek");

    public override void Write(byte[] buffer, int offset, int count) => Put(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer) => Put(buffer);

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Put(buffer.Span);
        if (!inMemory || writer.UnflushedBytes >= MessageMapping.FlushThreshold)
            await MessageMapping.FlushAsync(writer, cancellationToken).ConfigureAwait(false);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }

    public override Task FlushAsync(CancellationToken cancellationToken) =>
        MessageMapping.FlushAsync(writer, cancellationToken).AsTask();

    private void Put(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        if (plan is Framing.BodyLength.ContentLength cl && written + data.Length > cl.Item)
            throw new IOException($"the body is longer than its Content-Length of {cl.Item} bytes");
        written += data.Length;
        if (plan.IsChunked)
        {
            Chunked.writeChunk(writer, data);
            return;
        }
        // Ask for room for the whole piece (up to 64 KiB at a time), so a large write lands in one
        // pipe segment instead of many small ones.
        while (!data.IsEmpty)
        {
            var span = writer.GetSpan(Math.Min(data.Length, 64 * 1024));
            var n = Math.Min(span.Length, data.Length);
            data[..n].CopyTo(span);
            writer.Advance(n);
            data = data[n..];
        }
    }

    /// <summary>Checks that a Content-Length body was sent whole.</summary>
    public void Finish()
    {
        if (plan is Framing.BodyLength.ContentLength cl && written < cl.Item)
            throw new IOException($"the body ended after {written} of its {cl.Item} bytes (Content-Length)");
    }
}
