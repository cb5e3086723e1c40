using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// A message body read from the connection as the caller reads it. The core's body decoder decides
/// everything about the framing (Content-Length, chunked, until close, or none): where data is, where the
/// body ends, and when it is broken or cut short. This stream only moves bytes, hands chunked trailers to a
/// callback at the end, and reports a failure (which breaks the connection's read side). A broken or
/// truncated body throws <see cref="MalformedMessageException"/> (an <see cref="IOException"/>).
/// </summary>
internal sealed class BodyReadStream : Stream
{
    private readonly PipeReader reader;
    private readonly bool isRequest;
    private readonly ParserSettings settings;
    private readonly Action<object?, Headers>? onTrailers;
    private object? trailersState;
    private readonly TurnGate connection;
    private readonly Stream? transport;
    private bool pipeEmpty;
    private readonly SemaphoreSlim gate = new(1, 1);
    private Func<CancellationToken, ValueTask>? beforeFirstRead;
    private readonly bool chunked;
    private BodyDecoder decoder;
    private long read;
    private bool finished;
    private bool disposed;
    private Exception? failure;
    private Action<object, bool>? ended;
    private readonly BodyDeadlines? deadlines;
    private long waitedTicks;
    private object? endedState;

    /// <summary>A body read from <paramref name="reader"/>; a failure breaks the reading side of <paramref name="connection"/>.
    /// <paramref name="transport"/>, when given, is the stream <paramref name="reader"/> reads from and nothing else reads:
    /// large reads of an unframed body then go straight from it into the caller's buffer once the reader holds nothing.
    /// Chunked trailers go to <paramref name="onTrailers"/> with <paramref name="trailersState"/> (callbacks take their
    /// state as an argument so that none is a closure made per message).</summary>
    public BodyReadStream(PipeReader reader, Framing.BodyLength framing, bool isRequest, ParserSettings settings,
        Action<object?, Headers>? onTrailers, object? trailersState, Func<CancellationToken, ValueTask>? beforeFirstRead, TurnGate connection,
        Stream? transport, BodyDeadlines? deadlines = null)
    {
        this.deadlines = deadlines;
        this.transport = transport;
        this.reader = reader;
        this.isRequest = isRequest;
        this.settings = settings;
        this.onTrailers = onTrailers;
        this.trailersState = trailersState;
        this.beforeFirstRead = beforeFirstRead;
        this.connection = connection;
        decoder = CoreAdapter.NewDecoder(framing);
        chunked = CoreAdapter.EndsWithTrailers(framing);
        finished = decoder.Finished;
    }

    /// <summary>The state handed to the trailers callback (set after construction when the message it belongs to is
    /// made from the body).</summary>
    internal object? TrailersState
    {
        set => trailersState = value;
    }

    /// <summary>True once the body has been read to its end (trailers included).</summary>
    public bool IsFinished => finished;

    /// <summary>
    /// Calls <paramref name="callback"/> once: with true when the body has been read to its end (at once
    /// if it already has), with false when it failed or was disposed before its end. Exceptions from the
    /// callback reach the read that reached the end.
    /// </summary>
    internal void OnEnded(Action<object, bool> callback, object state)
    {
        endedState = state;
        ended = callback;
        if (finished) End(true);
        else if (disposed || failure is not null) End(false);
    }

    private void End(bool clean) => Interlocked.Exchange(ref ended, null)?.Invoke(endedState!, clean);

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

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            if (TryReadBuffered(buffer, out var n)) return new ValueTask<int>(n);
        }
        catch (Exception ex)
        {
            return ValueTask.FromException<int>(ex);
        }
        return ReadSlowAsync(buffer, cancellationToken);
    }

    /// <summary>
    /// The read that needs no waiting: the body already ended, or the reader holds body bytes. Done here without
    /// an async state machine (a 1 KiB response's body usually arrives with its head). False, having changed
    /// nothing, when the read must wait, the body is not in a plain state, or another operation holds it.
    /// </summary>
    private bool TryReadBuffered(Memory<byte> dest, out int n)
    {
        n = 0;
        if (disposed || failure is not null || beforeFirstRead is not null || dest.IsEmpty || !gate.Wait(0)) return false;
        try
        {
            if (finished)
            {
                End(true);
                return true;
            }
            if (!reader.TryRead(out var rr)) return false;
            var buffer = rr.Buffer;
            var before = decoder;
            var step = CoreAdapter.Decode(settings, isRequest, ref decoder, buffer, rr.IsCompleted);
            if (step.Kind != BodyReadKind.Data)
            {
                decoder = before;
                reader.AdvanceTo(buffer.Start);
                return false;
            }
            n = Fill(buffer, step, dest, rr.IsCompleted);
            read += n;
            if (finished) End(true);
            return true;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>True when the next read would not wait for the network: the body ended, or the reader already holds
    /// bytes of it. False when unsure (another operation holds the body, or it failed).</summary>
    internal bool HasBufferedBody()
    {
        if (finished) return true;
        if (disposed || failure is not null || !gate.Wait(0)) return false;
        try
        {
            if (!reader.TryRead(out var rr)) return false;
            var has = !rr.Buffer.IsEmpty || rr.IsCompleted;
            reader.AdvanceTo(rr.Buffer.Start);
            return has;
        }
        finally
        {
            gate.Release();
        }
    }

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadSlowAsync(Memory<byte> buffer, CancellationToken cancellationToken)
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
                n = deadlines is null ? await ReadCoreAsync(buffer, cancellationToken).ConfigureAwait(false)
                    : deadlines.Watch is { } watch ? await ReadWatchedAsync(buffer, watch, cancellationToken).ConfigureAwait(false)
                    : await ReadWithinAsync(buffer, deadlines, cancellationToken).ConfigureAwait(false);
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

    /// <summary>One read of a response body under the connection's heartbeat-checked idle timeout: past it the heartbeat
    /// closes the connection, and the read fails with an <see cref="IOException"/> around a <see cref="TimeoutException"/>.</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadWatchedAsync(Memory<byte> buffer, IdleWatch watch, CancellationToken ct)
    {
        watch.Begin();
        try
        {
            return await ReadCoreAsync(buffer, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (watch.Expired && !ct.IsCancellationRequested)
        {
            throw new IOException($"no byte of the response body for {watch.Limit.TotalSeconds:0.###} s (BodyIdleTimeout); the connection was closed",
                new TimeoutException("the response body stopped arriving", ex));
        }
        finally
        {
            watch.End();
        }
    }

    /// <summary>One read of a request body that fails with <see cref="RequestTimeoutException"/> when no byte came within
    /// the idle timeout, or
    /// when waiting longer would take the body's average rate below the minimum (a slow-body client). Time spent waiting
    /// here is what the rate is measured over; the deadline source is reused from read to read.</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadWithinAsync(Memory<byte> buffer, BodyDeadlines limits, CancellationToken ct)
    {
        // The waiting time is measured only where a rate needs it.
        var measured = limits.Rate is not null;
        var (limit, byRate) = measured ? limits.NextWait(read, Stopwatch.GetElapsedTime(0, waitedTicks)) : (limits.Idle!.Value, false);
        var deadline = limits.Pool.Start(ct, limit);
        var start = measured ? Stopwatch.GetTimestamp() : 0;
        try
        {
            return await ReadCoreAsync(buffer, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw byRate
                ? RequestTimeoutException.ForBodyRate(limits.Rate!, read, Stopwatch.GetElapsedTime(0, waitedTicks + Stopwatch.GetTimestamp() - start))
                : RequestTimeoutException.ForBody(limit);
        }
        finally
        {
            if (measured) waitedTicks += Stopwatch.GetTimestamp() - start;
            limits.Pool.Finish(deadline);
        }
    }

    /// <summary>
    /// Reads and drops the rest of the body. True when it ended within <paramref name="limit"/> bytes;
    /// false when more than that was left (the body is then abandoned part way).
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
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

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadCoreAsync(Memory<byte> dest, CancellationToken ct)
    {
        if (failure is not null) throw new IOException("the body failed earlier", failure);
        if (finished) return 0;
        try
        {
            var n = await DecodeAsync(dest, ct).ConfigureAwait(false);
            read += n;
            return n;
        }
        catch (Exception ex)
        {
            failure = ex;
            connection.Step(static (m, e) => m.BodyFailed(e), ex);
            throw;
        }
    }

    /// <summary>Reads and decodes until at least one body byte is in <paramref name="dest"/> or the body ended.</summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> DecodeAsync(Memory<byte> dest, CancellationToken ct)
    {
        if (transport is not null && pipeEmpty && dest.Length >= DirectReadMinimum && CoreAdapter.PassThrough(decoder) is > 0 and var allowed)
            return await ReadDirectAsync(dest[..(int)Math.Min(dest.Length, allowed)], ct).ConfigureAwait(false);
        while (true)
        {
            var rr = await reader.ReadAsync(ct).ConfigureAwait(false);
            if (rr.IsCanceled) throw new OperationCanceledException("the pending read was cancelled");
            var buffer = rr.Buffer;
            var step = CoreAdapter.Decode(settings, isRequest, ref decoder, buffer, rr.IsCompleted);
            switch (step.Kind)
            {
                case BodyReadKind.Data:
                    return Fill(buffer, step, dest, rr.IsCompleted);
                case BodyReadKind.End:
                    reader.AdvanceTo(buffer.GetPosition(step.Consumed));
                    finished = true;
                    if (chunked) onTrailers?.Invoke(trailersState, step.Trailers!);
                    return 0;
                case BodyReadKind.Error:
                    reader.AdvanceTo(buffer.Start);
                    throw new MalformedMessageException(step.Error!);
                default:
                    reader.AdvanceTo(buffer.GetPosition(step.Consumed), buffer.End);
                    break;
            }
        }
    }

    /// <summary>Reads at least this many bytes at once straight from the transport (below it, through the reader).</summary>
    private const int DirectReadMinimum = 8 * 1024;

    /// <summary>
    /// Reads body bytes straight from the transport into <paramref name="dest"/> (the reader holds nothing, and the
    /// framing puts nothing among these bytes): one receive and no copy, as SocketsHttpHandler reads large bodies.
    /// The decoder still accounts for every byte, and judges the end of the input.
    /// </summary>
    private async ValueTask<int> ReadDirectAsync(Memory<byte> dest, CancellationToken ct)
    {
        var n = await transport!.ReadAsync(dest, ct).ConfigureAwait(false);
        var step = CoreAdapter.Decode(settings, isRequest, ref decoder, new ReadOnlySequence<byte>(dest[..n]), n == 0);
        switch (step.Kind)
        {
            case BodyReadKind.Data when step.Data.Length == n:
                finished = decoder.Finished;
                return n;
            case BodyReadKind.End:
                finished = true;
                return 0;
            case BodyReadKind.Error:
                throw new MalformedMessageException(step.Error!);
            default:
                throw new InvalidOperationException($"the body decoder took {step.Data.Length} of {n} bytes read past the framing (a bug)");
        }
    }

    /// <summary>
    /// Copies the data of <paramref name="step"/> (decoded from the start of <paramref name="buffer"/>), then goes on
    /// decoding what is already buffered while <paramref name="dest"/> has room, so a body of many small chunks fills a
    /// large read instead of returning one chunk per call. It stops, without waiting for input, at the first step that
    /// needs more bytes or finds an error (both left for the next read, which decodes that step again) or at the end.
    /// </summary>
    private int Fill(ReadOnlySequence<byte> buffer, BodyRead step, Memory<byte> dest, bool inputEnded)
    {
        var written = 0;
        long consumed = 0;
        while (true)
        {
            var n = (int)Math.Min(step.Data.Length, dest.Length - written);
            step.Data.Slice(0, n).CopyTo(dest.Span[written..]);
            written += n;
            var unused = step.Data.Length - n;
            CoreAdapter.GiveBack(ref decoder, unused);
            consumed += step.Consumed - unused;
            if (written == dest.Length || decoder.Finished) break;
            var before = decoder;
            var next = CoreAdapter.Decode(settings, isRequest, ref decoder, buffer.Slice(consumed), inputEnded);
            if (next.Kind == BodyReadKind.Data)
            {
                step = next;
                continue;
            }
            if (next.Kind == BodyReadKind.End)
            {
                consumed += next.Consumed;
                if (chunked) onTrailers?.Invoke(trailersState, next.Trailers!);
                break;
            }
            decoder = before;
            break;
        }
        reader.AdvanceTo(buffer.GetPosition(consumed));
        pipeEmpty = consumed == buffer.Length;
        finished = decoder.Finished;
        return written;
    }

    protected override void Dispose(bool disposing)
    {
        disposed = true;
        if (!finished) End(false);
        base.Dispose(disposing);
    }
}
