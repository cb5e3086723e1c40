using System.Buffers;
using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// The stream an outgoing <see cref="HttpContent"/> is serialized into: the core's body encoder frames the
/// bytes as planned (as they are, or as chunks) into the connection's output pipe and refuses more bytes
/// than a Content-Length announced; <see cref="Finish"/> refuses fewer. Either way the connection could no
/// longer be framed, so the write fails with <see cref="IOException"/>. Content that may wait between writes
/// (anything but in-memory content) is flushed after every write so it streams; in-memory content every
/// 128 KiB.
/// </summary>
internal sealed class BodyWriteStream(PipeWriter writer, Framing.BodyLength plan, bool inMemory) : Stream
{
    /// <summary>Unflushed bytes past which in-memory content is flushed.</summary>
    internal const int FlushThreshold = 128 * 1024;

    private BodyEncoder encoder = CoreAdapter.NewEncoder(plan);

    /// <summary>
    /// Writes <paramref name="content"/> framed as <paramref name="plan"/> into <paramref name="writer"/>, then for a
    /// chunked body the last-chunk with <paramref name="trailers"/>. The last bytes are left unflushed: the caller
    /// flushes. Content is serialized afresh each time (so a retried request sends it again).
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    public static async ValueTask WriteAsync(PipeWriter writer, HttpContent? content, Framing.BodyLength plan, Func<Headers>? trailers,
        CancellationToken ct)
    {
        if (content is null || !CoreAdapter.SendsBody(plan)) return;
        var body = new BodyWriteStream(writer, plan, content is ByteArrayContent or ReadOnlyMemoryContent);
        await content.CopyToAsync(body, ct).ConfigureAwait(false);
        body.Finish();
        if (CoreAdapter.EndsWithTrailers(plan)) writer.Write(CoreAdapter.LastChunk(trailers?.Invoke() ?? Headers.Empty));
    }

    /// <summary>Flushes <paramref name="writer"/>; a cancelled flush throws.</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    public static async ValueTask FlushAsync(PipeWriter writer, CancellationToken ct)
    {
        var r = await writer.FlushAsync(ct).ConfigureAwait(false);
        if (r.IsCanceled) throw new OperationCanceledException("the flush was cancelled");
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException("a body being sent has no length as a stream");
    public override long Position
    {
        get => encoder.Written;
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
        if (!inMemory || writer.UnflushedBytes >= FlushThreshold)
            await FlushAsync(writer, cancellationToken).ConfigureAwait(false);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }

    public override Task FlushAsync(CancellationToken cancellationToken) => FlushAsync(writer, cancellationToken).AsTask();

    private void Put(ReadOnlySpan<byte> data)
    {
        if (CoreAdapter.Encode(writer, ref encoder, data) is { } error) throw new IOException(error.Message);
    }

    /// <summary>Checks that the body went out whole.</summary>
    public void Finish()
    {
        if (CoreAdapter.FinishEncoding(encoder) is { } error) throw new IOException(error.Message);
    }
}
