using System.Buffers;
using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// A message body read from the connection as the caller reads it, framed as the core decided
/// (Content-Length, chunked, until close, or none). Chunked trailers are handed to a callback at the
/// end. A framing error or a truncated body throws <see cref="MalformedMessageException"/> and breaks
/// the connection's read side; so does an I/O failure or a cancellation part way.
/// </summary>
internal sealed class BodyReadStream : Stream
{
    private readonly PipeReader reader;
    private readonly Framing.BodyLength framing;
    private readonly bool isRequest;
    private readonly ParserSettings settings;
    private readonly Action<Headers>? onTrailers;
    private readonly Action<ConnError> onFailure;
    private readonly string objectName;
    private readonly SemaphoreSlim gate = new(1, 1);
    private Func<CancellationToken, ValueTask>? beforeFirstRead;
    private long remaining;
    private long read;
    private ChunkedDecoder decoder = ChunkedDecoder.Start;
    private bool finished;
    private bool disposed;
    private Exception? failure;
    private Action<bool>? ended;

    public BodyReadStream(PipeReader reader, Framing.BodyLength framing, bool isRequest, ParserSettings settings,
        Action<Headers>? onTrailers, Func<CancellationToken, ValueTask>? beforeFirstRead, Action<ConnError> onFailure,
        string objectName)
    {
        this.reader = reader;
        this.framing = framing;
        this.isRequest = isRequest;
        this.settings = settings;
        this.onTrailers = onTrailers;
        this.beforeFirstRead = beforeFirstRead;
        this.onFailure = onFailure;
        this.objectName = objectName;
        if (framing is Framing.BodyLength.ContentLength cl) remaining = cl.Item;
        finished = framing.IsNoBody || (framing.IsContentLength && remaining == 0);
    }

    /// <summary>True once the body has been read to its end (trailers included).</summary>
    public bool IsFinished => finished;

    /// <summary>
    /// Calls <paramref name="callback"/> once: with true when the body has been read to its end (at once
    /// if it already has), with false when it failed or was disposed before its end. Exceptions from the
    /// callback reach the read that reached the end.
    /// </summary>
    internal void OnEnded(Action<bool> callback)
    {
        ended = callback;
        if (finished) End(true);
        else if (disposed || failure is not null) End(false);
    }

    private void End(bool clean) => Interlocked.Exchange(ref ended, null)?.Invoke(clean);

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException("a body read off the wire has no known length as a stream");
    public override long Position
    {
        get => read;
        set => throw new NotSupportedException("a body read off the wire cannot seek");
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("a body read off the wire cannot seek");
    public override void SetLength(long value) => throw new NotSupportedException("a body read off the wire is read-only");
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("a body read off the wire is read-only");

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed && !finished, this);
        if (buffer.IsEmpty) return 0;
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (beforeFirstRead is { } first && !finished)
            {
                beforeFirstRead = null;
                await first(cancellationToken).ConfigureAwait(false);
            }
            int n;
            try
            {
                n = await ReadCoreAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                End(false);
                throw;
            }
            if (finished) End(true);
            return n;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Reads and drops the rest of the body. True when it ended within <paramref name="limit"/> bytes;
    /// false when more than that was left (the body is then abandoned part way).
    /// </summary>
    public async ValueTask<bool> DrainAsync(long limit, CancellationToken ct)
    {
        await gate.WaitAsync(ct).ConfigureAwait(false);
        var scratch = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            beforeFirstRead = null;
            long dropped = 0;
            while (!finished)
            {
                if (dropped > limit) return false;
                dropped += await ReadCoreAsync(scratch, ct).ConfigureAwait(false);
            }
            return dropped <= limit;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
            gate.Release();
        }
    }

    private async ValueTask<int> ReadCoreAsync(Memory<byte> dest, CancellationToken ct)
    {
        if (failure is not null) throw new IOException("the body failed earlier", failure);
        if (finished) return 0;
        try
        {
            var n = framing switch
            {
                Framing.BodyLength.ContentLength => await ReadLengthAsync(dest, ct).ConfigureAwait(false),
                _ when framing.IsChunked => await ReadChunkedAsync(dest, ct).ConfigureAwait(false),
                _ => await ReadUntilCloseAsync(dest, ct).ConfigureAwait(false),
            };
            read += n;
            return n;
        }
        catch (MalformedMessageException ex)
        {
            failure = ex;
            onFailure(ConnError.NewMalformed(ex.Error));
            throw;
        }
        catch (Exception ex)
        {
            failure = ex;
            onFailure(ConnError.NewTransport(ex));
            throw;
        }
    }

    private MalformedMessageException Truncated() => new(HttpErrorModule.create(ErrorKind.UnexpectedEnd, read,
        $"the connection ended after {read} bytes of the body"));

    private async ValueTask<ReadResult> ReadPipeAsync(CancellationToken ct)
    {
        var rr = await reader.ReadAsync(ct).ConfigureAwait(false);
        if (rr.IsCanceled) throw new OperationCanceledException("the pending read was cancelled");
        return rr;
    }

    private async ValueTask<int> ReadLengthAsync(Memory<byte> dest, CancellationToken ct)
    {
        var rr = await ReadPipeAsync(ct).ConfigureAwait(false);
        var buffer = rr.Buffer;
        if (buffer.IsEmpty && rr.IsCompleted)
        {
            reader.AdvanceTo(buffer.Start);
            throw Truncated();
        }
        var n = (int)Math.Min(Math.Min(buffer.Length, remaining), dest.Length);
        buffer.Slice(0, n).CopyTo(dest.Span);
        reader.AdvanceTo(buffer.GetPosition(n));
        remaining -= n;
        if (remaining == 0) finished = true;
        return n;
    }

    private async ValueTask<int> ReadUntilCloseAsync(Memory<byte> dest, CancellationToken ct)
    {
        var rr = await ReadPipeAsync(ct).ConfigureAwait(false);
        var buffer = rr.Buffer;
        if (buffer.IsEmpty && rr.IsCompleted)
        {
            reader.AdvanceTo(buffer.Start);
            finished = true;
            return 0;
        }
        var n = (int)Math.Min(buffer.Length, dest.Length);
        buffer.Slice(0, n).CopyTo(dest.Span);
        reader.AdvanceTo(buffer.GetPosition(n));
        return n;
    }

    private async ValueTask<int> ReadChunkedAsync(Memory<byte> dest, CancellationToken ct)
    {
        while (true)
        {
            var rr = await ReadPipeAsync(ct).ConfigureAwait(false);
            var buffer = rr.Buffer;
            var result = Chunked.decode(settings, isRequest, decoder, buffer);
            if (result.IsError)
            {
                reader.AdvanceTo(buffer.Start);
                throw new MalformedMessageException(result.ErrorValue);
            }
            var step = result.ResultValue;
            switch (step.Output.Tag)
            {
                case ChunkedOutput.Tags.BodyData:
                {
                    var data = step.Output.Data;
                    var n = (int)Math.Min(data.Length, dest.Length);
                    data.Slice(0, n).CopyTo(dest.Span);
                    var unused = data.Length - n;
                    decoder = Chunked.giveBack(unused, step.Decoder);
                    reader.AdvanceTo(buffer.GetPosition(step.Consumed - unused));
                    return n;
                }
                case ChunkedOutput.Tags.BodyEnd:
                    decoder = step.Decoder;
                    reader.AdvanceTo(buffer.GetPosition(step.Consumed));
                    finished = true;
                    onTrailers?.Invoke(step.Output.Trailers!);
                    return 0;
                default:
                    decoder = step.Decoder;
                    reader.AdvanceTo(buffer.GetPosition(step.Consumed), buffer.End);
                    if (rr.IsCompleted) throw Truncated();
                    break;
            }
        }
    }

    protected override void Dispose(bool disposing)
    {
        disposed = true;
        if (!finished) End(false);
        base.Dispose(disposing);
    }
}
