using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace HttpUtil;

/// <summary>
/// Sends what writers put in the connection's output pipe. Writers only fill the pipe (so a write
/// "completes" when its bytes are in the pipe, not on the wire); one loop sends everything buffered
/// when it wakes, so pipelined messages written close together share a send, gathered into one
/// <c>sendmsg</c> on a socket.
/// </summary>
/// <remarks><para>The loop runs on the thread pool, not on the flushing writer's thread: a burst of pipelined writes
/// then piles up while the loop wakes and goes out in few sends. (Waking it inline on the writer's thread saved
/// no measurable CPU under load, and made every pipelined write its own send: ClientConn at depth 16 took
/// twice as long per request.)</para>
/// <para>A send failure completes the pipe with the exception (so a writer waiting on back-pressure
/// sees it) and is reported once through <c>onFailure</c>, which breaks the connection's writing side in
/// the core: later writes then fail with "the connection broke earlier", not as if their own bytes had
/// failed.</para></remarks>
internal sealed class SendLoop
{
    private readonly Stream stream;
    private readonly Pipe output;
    private readonly Task loop;
    private readonly Action<Exception> onFailure;
    private Exception? failure;

    public SendLoop(Stream stream, Action<Exception> onFailure)
    {
        this.stream = stream;
        this.onFailure = onFailure;
        output = new Pipe(new PipeOptions(
            pool: new ConnectionMemoryPool(),
            readerScheduler: PipeScheduler.ThreadPool,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: 256 * 1024,
            resumeWriterThreshold: 128 * 1024,
            useSynchronizationContext: false));
        loop = RunAsync();
    }

    /// <summary>How long one send may take for the peer to take its bytes (null: no limit). Past it the send
    /// fails, which breaks the writing side, and the stream is disposed: a peer that stops reading cannot hold a
    /// writer (and its buffers) forever.</summary>
    public TimeSpan? StallTimeout { get; set; }

    /// <summary>The slowest the peer may take bytes (null: no minimum). A send of n bytes may then take
    /// max(<see cref="StallTimeout"/>, grace period + n / rate): a peer that reads slowly but steadily keeps its
    /// connection however large the send, and one that reads slower than the rate loses it.</summary>
    public MinDataRate? MinRate { get; set; }

    /// <summary>The most bytes one send carries while a <see cref="MinRate"/> is set (else no bound): with the rate it
    /// bounds how long a peer that takes nothing can hold a send (grace period + 64 KiB / rate; 278 s at Kestrel's
    /// 240 B/s, as Kestrel's 64 KiB response buffer does).</summary>
    private int SendLimitBytes => MinRate is null ? int.MaxValue : 64 * 1024;

    /// <summary>Where writers put bytes to send.</summary>
    public PipeWriter Writer => output.Writer;

    private async Task RunAsync()
    {
        await Task.Yield();
        var reader = output.Reader;
        var socket = (stream as NetworkStream)?.Socket;
        var gather = new List<ArraySegment<byte>>();
        try
        {
            while (true)
            {
                var rr = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = rr.Buffer;
                if (socket is not null && !buffer.IsSingleSegment && TryGather(buffer, gather))
                {
                    var left = buffer;
                    while (left.Length > 0)
                    {
                        if (left.Length > SendLimitBytes) TryGather(left.Slice(0, SendLimitBytes), gather);
                        var size = Math.Min(left.Length, SendLimitBytes);
                        var sending = socket.SendAsync(gather, SocketFlags.None);
                        var sent = sending.IsCompleted ? await sending.ConfigureAwait(false) : await WithinAsync(sending, size).ConfigureAwait(false);
                        left = left.Slice(sent);
                        if (left.Length > 0 && left.Length <= SendLimitBytes) TryGather(left, gather);
                    }
                }
                else
                {
                    foreach (var segment in buffer)
                    {
                        for (var piece = segment; !piece.IsEmpty; piece = piece[Math.Min(piece.Length, SendLimitBytes)..])
                        {
                            var part = piece[..Math.Min(piece.Length, SendLimitBytes)];
                            var writing = stream.WriteAsync(part);
                            if (writing.IsCompleted) await writing.ConfigureAwait(false);
                            else await WithinAsync(writing.AsTask(), part.Length).ConfigureAwait(false);
                        }
                    }
                    // A socket sends what it is given; other streams (TLS, compression, user streams) may buffer.
                    if (!buffer.IsEmpty && socket is null) await stream.FlushAsync().ConfigureAwait(false);
                }
                reader.AdvanceTo(buffer.End);
                if (rr.IsCompleted) break;
            }
            await reader.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            failure = ex;
            await reader.CompleteAsync(ex).ConfigureAwait(false);
            onFailure(ex);
        }
    }

    /// <summary>Waits for a send of <paramref name="bytes"/> that did not complete at once, at most its limit (see
    /// <see cref="MinRate"/>); past it the stream is disposed (which ends the send) and the failure names the setting.</summary>
    private async Task<int> WithinAsync(Task<int> sending, long bytes)
    {
        await WithinAsync((Task)sending, bytes).ConfigureAwait(false);
        return sending.Result;
    }

    private async Task WithinAsync(Task sending, long bytes)
    {
        var (limit, byRate) = SendLimit(bytes);
        if (limit == Timeout.InfiniteTimeSpan)
        {
            await sending.ConfigureAwait(false);
            return;
        }
        try
        {
            await sending.WaitAsync(limit).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw new IOException(byRate
                ? $"the peer took fewer than {bytes} bytes in {limit.TotalSeconds:0.###} s, slower than {MinRate!.BytesPerSecond:0.#} B/s " +
                  "(the minimum response data rate); the connection was closed"
                : $"the peer did not take {bytes} bytes within {limit.TotalSeconds:0.###} s (SendTimeout); the connection was closed");
        }
    }

    /// <summary>How long a send of <paramref name="bytes"/> may take, and whether the rate (rather than the stall timeout)
    /// sets it; <see cref="Timeout.InfiniteTimeSpan"/> for no limit.</summary>
    private (TimeSpan Limit, bool ByRate) SendLimit(long bytes)
    {
        var stall = StallTimeout ?? Timeout.InfiniteTimeSpan;
        if (MinRate is not { } rate) return (stall, false);
        var seconds = rate.GracePeriod.TotalSeconds + bytes / rate.BytesPerSecond;
        if (seconds * 1000 >= int.MaxValue - 1) return (stall, false);
        var byRate = TimeSpan.FromSeconds(seconds);
        return StallTimeout is null || byRate > stall ? (byRate, true) : (stall, false);
    }

    private static bool TryGather(ReadOnlySequence<byte> buffer, List<ArraySegment<byte>> into)
    {
        into.Clear();
        foreach (var segment in buffer)
        {
            if (!MemoryMarshal.TryGetArray(segment, out var array)) return false;
            into.Add(array);
        }
        return true;
    }

    /// <summary>
    /// Stops sending once what was written has gone out, waiting (asynchronously) at most <paramref name="wait"/>.
    /// Returns normally when every byte was sent; throws <see cref="IOException"/> when the send failed or did
    /// not finish in time (the peer does not read), saying so: written data is never dropped silently.
    /// </summary>
    public async ValueTask StopAsync(TimeSpan wait, CancellationToken ct)
    {
        try
        {
            await output.Writer.CompleteAsync().ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // A write is still running on another thread; it fails on its own, and the loop ends below.
        }
        try
        {
            await loop.WaitAsync(wait, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new IOException($"bytes already written were not sent within {wait.TotalSeconds:0.###} s (FlushTimeout): the peer is not reading");
        }
        if (failure is not null) throw new IOException($"bytes already written could not be sent: {failure.Message}", failure);
    }
}
