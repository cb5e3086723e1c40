using System.Buffers;
using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// Writes data to another stream in the chunked coding (RFC 9112 section 7.1), one chunk per non-empty write;
/// made by <see cref="ChunkedCoding.NewChunkedWriter"/>. Each write is flushed to the destination, so chunks
/// stream. <see cref="CompleteAsync"/> ends the body. Unlike Go's writer, which leaves the final empty line to
/// the caller, completing writes the whole end: last-chunk, trailers, empty line.
/// </summary>
public sealed class ChunkedWriteStream : Stream
{
    private readonly PipeWriter writer;
    private readonly BodyWriteStream chunks;
    private bool completed;

    internal ChunkedWriteStream(Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        writer = PipeWriter.Create(destination, new StreamPipeWriterOptions(leaveOpen: true));
        chunks = new BodyWriteStream(writer, CoreAdapter.ChunkedFraming, inMemory: false);
    }

    /// <summary>Writes <paramref name="buffer"/> as one chunk (nothing for an empty buffer) and flushes it.</summary>
    /// <param name="buffer">The data.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <exception cref="InvalidOperationException">The body was already completed.</exception>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (completed) throw new InvalidOperationException("the chunked body was already completed");
        return chunks.WriteAsync(buffer, cancellationToken);
    }

    /// <inheritdoc cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Ends the body: the last-chunk, then <paramref name="trailers"/> (none when null), then the empty
    /// line. Completing twice does nothing the second time.</summary>
    /// <param name="trailers">Trailer fields, or null.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <exception cref="InvalidOperationException">A trailer field cannot be written (a bad name or value).</exception>
    public async ValueTask CompleteAsync(Headers? trailers = null, CancellationToken cancellationToken = default)
    {
        if (completed) return;
        completed = true;
        writer.Write(CoreAdapter.LastChunk(trailers ?? Headers.Empty));
        await BodyWriteStream.FlushAsync(writer, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Not supported: write with <see cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>.</summary>
    /// <exception cref="NotSupportedException">Always: the destination is written asynchronously only.</exception>
    public override void Write(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("a chunked writer writes asynchronously only: use WriteAsync");

    /// <inheritdoc/>
    public override bool CanRead => false;
    /// <inheritdoc/>
    public override bool CanSeek => false;
    /// <inheritdoc/>
    public override bool CanWrite => !completed;
    /// <summary>Not supported.</summary>
    public override long Length => throw new NotSupportedException("a chunked writer has no length");
    /// <summary>Not supported.</summary>
    public override long Position
    {
        get => throw new NotSupportedException("a chunked writer cannot seek");
        set => throw new NotSupportedException("a chunked writer cannot seek");
    }
    /// <summary>Nothing to do: every write is flushed.</summary>
    public override void Flush() { }
    /// <summary>Nothing to do: every write is flushed.</summary>
    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    /// <summary>Not supported.</summary>
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("a chunked writer is write-only");
    /// <summary>Not supported.</summary>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("a chunked writer cannot seek");
    /// <summary>Not supported.</summary>
    public override void SetLength(long value) => throw new NotSupportedException("a chunked writer cannot seek");

    /// <summary>Completes the body (without trailers) if that was not done, then releases the writer; the
    /// destination stays open.</summary>
    public override async ValueTask DisposeAsync()
    {
        await CompleteAsync().ConfigureAwait(false);
        await writer.CompleteAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Releases the writer without writing; dispose asynchronously (<c>await using</c>) to end the body.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing) writer.Complete();
        base.Dispose(disposing);
    }
}
