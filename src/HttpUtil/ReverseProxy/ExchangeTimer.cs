using System.Diagnostics;
using HttpUtil.Core;

namespace HttpUtil;

/// <summary>
/// The phases of one upstream request, measured through a <see cref="ClientTrace"/> (so only with
/// <see cref="Transport"/>; with another handler only the total is known): DNS, connect, TLS, wait (request
/// written to first response byte) and total (until the response head), in milliseconds.
/// </summary>
internal sealed class ExchangeTimer
{
    private readonly long start = Stopwatch.GetTimestamp();
    private long dnsStart, dnsDone, connectStart, connectDone, tlsStart, tlsDone, wrote, firstByte, head;

    public ExchangeTimer()
    {
        Trace = new ClientTrace
        {
            GotConn = i => Reused = i.Reused,
            DnsStart = _ => dnsStart = Stopwatch.GetTimestamp(),
            DnsDone = _ => dnsDone = Stopwatch.GetTimestamp(),
            ConnectStart = _ => connectStart = connectStart == 0 ? Stopwatch.GetTimestamp() : connectStart,
            ConnectDone = _ => connectDone = Stopwatch.GetTimestamp(),
            TlsHandshakeStart = () => tlsStart = Stopwatch.GetTimestamp(),
            TlsHandshakeDone = _ => tlsDone = Stopwatch.GetTimestamp(),
            WroteRequest = _ => wrote = Stopwatch.GetTimestamp(),
            GotFirstResponseByte = () => firstByte = Stopwatch.GetTimestamp(),
        };
    }

    /// <summary>The hooks that record the phases.</summary>
    public ClientTrace Trace { get; }

    /// <summary>True when the request went on a reused connection.</summary>
    public bool Reused { get; private set; }

    /// <summary>Marks the arrival of the response head.</summary>
    public void HeadArrived() => head = Stopwatch.GetTimestamp();

    private static double Ms(long from, long to) =>
        from == 0 || to == 0 ? double.NaN : Stopwatch.GetElapsedTime(from, to).TotalMilliseconds;

    public double Dns => Ms(dnsStart, dnsDone);
    public double Connect => Ms(connectStart, connectDone);
    public double Tls => Ms(tlsStart, tlsDone);
    public double Wait => Ms(wrote, firstByte);
    public double Total => Ms(start, head);

    /// <summary>The <c>Server-Timing</c> value for these phases.</summary>
    public string ServerTiming() => Forwarding.serverTiming(Dns, Connect, Tls, Wait, Total);
}
