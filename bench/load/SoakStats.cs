using System.Diagnostics;

namespace HttpUtil.Load;

/// <summary>What the soak (bench/soak) samples from the proxy process every few seconds: resident memory, the managed
/// heap, sockets open, and the upstream connections the proxy's Transport keeps idle. One JSON line each.</summary>
internal static class SoakStats
{
    public static async Task RunAsync(TimeSpan every, CancellationToken stop)
    {
        var start = Stopwatch.GetTimestamp();
        using var timer = new PeriodicTimer(every);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                using var self = Process.GetCurrentProcess();
                var info = GC.GetGCMemoryInfo();
                Console.WriteLine(
                    $"{{\"seconds\":{Stopwatch.GetElapsedTime(start).TotalSeconds:0.0},\"rss_mb\":{self.WorkingSet64 / 1048576.0:0.0}," +
                    $"\"heap_mb\":{GC.GetTotalMemory(false) / 1048576.0:0.0},\"heap_committed_mb\":{info.TotalCommittedBytes / 1048576.0:0.0}," +
                    $"\"gen2\":{GC.CollectionCount(2)},\"sockets\":{Sockets()},\"idle_upstream\":{ReverseProxy.DefaultTransport.IdleConnectionCount}}}");
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Open sockets of this process (file descriptors that are sockets).</summary>
    private static int Sockets()
    {
        var n = 0;
        foreach (var fd in Directory.EnumerateFiles("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true) n++;
            }
            catch (IOException)
            {
            }
        }
        return n;
    }
}
