using Microsoft.Extensions.Logging;

namespace HttpUtil;

/// <summary>
/// The two copies of a connection that switched protocols: client to upstream and upstream to client. When the
/// client's side ends, the upstream's sending side is shut down (where the stream allows it) and the upstream's
/// remaining bytes still reach the client; when the upstream's side ends, the tunnel is over. Every byte read
/// before an end is written and flushed first.
/// </summary>
internal static class UpgradeTunnel
{
    public static async Task RunAsync(Stream client, Stream upstream, IBufferPool pool, int bufferSize, ILogger log)
    {
        using var stop = new CancellationTokenSource();
        var toUpstream = CopyAsync(client, upstream, pool, bufferSize, stop.Token);
        var toClient = CopyAsync(upstream, client, pool, bufferSize, stop.Token);
        var first = await Task.WhenAny(toUpstream, toClient).ConfigureAwait(false);
        if (first == toUpstream && toUpstream.Result is null && upstream is IWriteShutdown halfClose)
        {
            await halfClose.ShutdownWriteAsync().ConfigureAwait(false);
            await toClient.ConfigureAwait(false);
        }
        await stop.CancelAsync().ConfigureAwait(false);
        var failures = new[] { await toUpstream.ConfigureAwait(false), await toClient.ConfigureAwait(false) };
        foreach (var f in failures)
        {
            if (f is not null and not OperationCanceledException)
                log.LogDebug(f, "a tunnel after 101 Switching Protocols ended with an error");
        }
    }

    /// <summary>Copies until the source ends (null) or a side fails (the exception).</summary>
    private static async Task<Exception?> CopyAsync(Stream from, Stream to, IBufferPool pool, int size, CancellationToken ct)
    {
        var buffer = pool.Rent(size);
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer, ct).ConfigureAwait(false);
                if (n == 0) return null;
                await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                await to.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            return ex;
        }
        finally
        {
            pool.Return(buffer);
        }
    }
}
