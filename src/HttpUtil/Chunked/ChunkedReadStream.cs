using System.Buffers;
using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// Reads a chunked body (RFC 9112 section 7.1) from another stream and returns its data; made by
/// <see cref="ChunkedCoding.NewChunkedReader"/>. The core's chunked decoder decides everything about the
/// coding: chunk sizes, extensions (ignored), line endings, the last-chunk and the trailer section. The reader
/// stops after the empty line that ends the trailers, so bytes after the body stay in the source's
/// buffer only as far as the reader had to read ahead.
/// </summary>
public sealed class ChunkedReadStream : Stream
{
    private readonly PipeReader reader;
    private BodyDecoder decoder = CoreAdapter.NewDecoder(CoreAdapter.ChunkedFraming);
    private bool finished;

    internal ChunkedReadStream(Stream source)
    {
        ArgumentNullException.ThrowIfNull(source);
        reader = PipeReader.Create(source, new StreamPipeReaderOptions(leaveOpen: true));
    }

    /// <summary>The trailer fields after the last-chunk; null until the body has been read to its end.</summary>
    public Headers? Trailers { get; private set; }

    /// <summary>Reads body data into <paramref name="buffer"/>.</summary>
    /// <param name="buffer">Where the data goes.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>How many bytes were read; 0 once the body ended.</returns>
    /// <exception cref="MalformedMessageException">The coding is broken, or the source ended inside the body.</exception>
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (finished || buffer.Length == 0) return 0;
        while (true)
        {
            var rr = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var input = rr.Buffer;
            var step = CoreAdapter.Decode(ParserSettings.Default, false, ref decoder, input, rr.IsCompleted);
            switch (step.Kind)
            {
                case BodyReadKind.Data:
                    var n = (int)Math.Min(step.Data.Length, buffer.Length);
                    step.Data.Slice(0, n).CopyTo(buffer.Span);
                    var unused = step.Data.Length - n;
                    CoreAdapter.GiveBack(ref decoder, unused);
                    reader.AdvanceTo(input.GetPosition(step.Consumed - unused));
                    return n;
                case BodyReadKind.End:
                    reader.AdvanceTo(input.GetPosition(step.Consumed));
                    finished = true;
                    Trailers = step.Trailers;
                    return 0;
                case BodyReadKind.Error:
                    reader.AdvanceTo(input.Start);
                    throw new MalformedMessageException(step.Error!);
                default:
                    reader.AdvanceTo(input.GetPosition(step.Consumed), input.End);
                    break;
            }
        }
    }

    /// <inheritdoc cref="ReadAsync(Memory{byte}, CancellationToken)"/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Not supported: read with <see cref="ReadAsync(Memory{byte}, CancellationToken)"/>.</summary>
    /// <exception cref="NotSupportedException">Always: the source is read asynchronously only.</exception>
    public override int Read(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("a chunked reader reads asynchronously only: use ReadAsync");

    /// <inheritdoc/>
    public override bool CanRead => true;
    /// <inheritdoc/>
    public override bool CanSeek => false;
    /// <inheritdoc/>
    public override bool CanWrite => false;
    /// <summary>Not supported: a chunked body's length is known only at its end.</summary>
    public override long Length => throw new NotSupportedException("a chunked body has no length until it ends");
    /// <summary>Not supported.</summary>
    public override long Position
    {
        get => throw new NotSupportedException("a chunked reader cannot seek");
        set => throw new NotSupportedException("a chunked reader cannot seek");
    }
    /// <inheritdoc/>
    public override void Flush() { }
    /// <summary>Not supported.</summary>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("a chunked reader cannot seek");
    /// <summary>Not supported.</summary>
    public override void SetLength(long value) => throw new NotSupportedException("a chunked reader cannot seek");
    /// <summary>Not supported.</summary>
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("a chunked reader is read-only");

    /// <summary>Releases the reader; the source stays open.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing) reader.Complete();
        base.Dispose(disposing);
    }
}
