using System.Net;
using System.Net.Sockets;

namespace HttpUtil;

/// <summary>
/// The phases of one request as httpstat draws them, measured through a <see cref="ClientTrace"/> (so with
/// <see cref="Transport"/>, <see cref="ClientConn"/> fires only the write and read hooks): DNS lookup, TCP
/// connect, TLS handshake, request sent, server processing (to the first response byte) and content transfer,
/// plus the facts about the connection the request got.
/// </summary>
/// <remarks>
/// <para>The phases run back to back from <see cref="Start"/>: each ends at its hook (DNS done, connect done, TLS
/// done, request written, first response byte, <see cref="BodyEnded"/>), so they never overlap, none is negative, and
/// they add up to <see cref="Total"/>. A phase that did not happen (no lookup for an IP address, nothing of the
/// connection set-up on a reused connection) is null and takes no time; waiting for a pooled connection counts
/// as sending the request. Attach <see cref="Trace"/> with <see cref="ClientTraceExtensions.WithClientTrace"/>.</para>
/// <para>One instance measures one request. Reading the results while the request runs sees a partial picture.</para>
/// </remarks>
public sealed class RequestTimings
{
    private readonly TimeProvider time;
    private long start, dnsDone, connectDone, tlsDone, wrote, firstByte, head, end;

    /// <summary>Timings on the system clock, starting now.</summary>
    public RequestTimings() : this(TimeProvider.System)
    {
    }

    /// <summary>Timings on <paramref name="time"/>'s timestamps, starting now.</summary>
    /// <param name="time">The clock (a fake one in tests).</param>
    public RequestTimings(TimeProvider time)
    {
        this.time = time ?? throw new ArgumentNullException(nameof(time));
        start = time.GetTimestamp();
        Trace = new ClientTrace
        {
            DnsDone = i =>
            {
                dnsDone = Now();
                DnsAddresses = i.Addresses;
                DnsCoalesced = i.Coalesced;
            },
            ConnectDone = i =>
            {
                if (i.Error is not null) return;
                connectDone = Now();
                RemoteAddress = i.Address;
            },
            TlsHandshakeDone = i =>
            {
                tlsDone = Now();
                Tls = i.State;
            },
            GotConn = i =>
            {
                Reused = i.Reused;
                WasIdle = i.WasIdle;
                IdleTime = i.IdleTime;
                RemoteAddress ??= RemoteOf(i.Stream);
            },
            WroteRequest = _ => wrote = Now(),
            GotFirstResponseByte = () => firstByte = Now(),
        };
    }

    /// <summary>The hooks that record the phases and facts.</summary>
    public ClientTrace Trace { get; }

    /// <summary>Restarts the clock (the timings start when made; call this just before sending when the request
    /// was built earlier).</summary>
    public void Start() => start = Now();

    /// <summary>Marks the response head as arrived (what <see cref="UntilHead"/> measures to).</summary>
    public void HeadArrived() => head = Now();

    /// <summary>Marks the response body as read to its end (what <see cref="ContentTransfer"/> and <see cref="Total"/>
    /// measure to).</summary>
    public void BodyEnded()
    {
        end = Now();
        if (head == 0) head = end;
    }

    /// <summary>True when the request went on a connection that carried an earlier request.</summary>
    public bool Reused { get; private set; }

    /// <summary>True when that connection came from the idle pool.</summary>
    public bool WasIdle { get; private set; }

    /// <summary>How long the connection sat idle before this request; zero unless <see cref="WasIdle"/>.</summary>
    public TimeSpan IdleTime { get; private set; }

    /// <summary>The address connected to (<c>ip:port</c>), also for a reused connection; null when unknown.</summary>
    public string? RemoteAddress { get; private set; }

    /// <summary>The addresses the lookup found; empty when there was none.</summary>
    public IReadOnlyList<IPAddress> DnsAddresses { get; private set; } = [];

    /// <summary>True when the lookup joined one for the same host already in flight.</summary>
    public bool DnsCoalesced { get; private set; }

    /// <summary>The negotiated TLS state; null for plain HTTP or a reused connection.</summary>
    public TlsConnectionState? Tls { get; private set; }

    /// <summary>From the start to the end of the DNS lookup; null when there was none.</summary>
    public TimeSpan? DnsLookup => dnsDone == 0 ? null : Span(start, dnsDone);

    /// <summary>From the lookup (or the start) to the TCP connection; null on a reused connection.</summary>
    public TimeSpan? TcpConnection => connectDone == 0 ? null : Span(AfterDns, connectDone);

    /// <summary>From the TCP connection to the end of the TLS handshake; null without one.</summary>
    public TimeSpan? TlsHandshake => tlsDone == 0 ? null : Span(AfterConnect, tlsDone);

    /// <summary>From the connection being ready (or the start) to the request written whole.</summary>
    public TimeSpan? RequestSent => wrote == 0 ? null : Span(AfterTls, wrote);

    /// <summary>From the request written to the first response byte: the server's time, plus one round trip.</summary>
    public TimeSpan? ServerProcessing => firstByte == 0 ? null : Span(AfterWrote, firstByte);

    /// <summary>From the first response byte to the end of the body.</summary>
    public TimeSpan? ContentTransfer => end == 0 ? null : Span(Math.Max(AfterWrote, firstByte), end);

    /// <summary>From the start to the response head.</summary>
    public TimeSpan? UntilHead => head == 0 ? null : Span(start, head);

    /// <summary>From the start to the end of the body: the sum of the phases.</summary>
    public TimeSpan? Total => end == 0 ? null : Span(start, end);

    private long AfterDns => Math.Max(start, dnsDone);
    private long AfterConnect => Math.Max(AfterDns, connectDone);
    private long AfterTls => Math.Max(AfterConnect, tlsDone);
    private long AfterWrote => Math.Max(AfterTls, wrote);

    private long Now() => time.GetTimestamp();

    private TimeSpan Span(long from, long to) => to <= from ? TimeSpan.Zero : time.GetElapsedTime(from, to);

    private static string? RemoteOf(Stream stream) => stream switch
    {
        NetworkStream n => n.Socket.RemoteEndPoint?.ToString(),
        _ => null,
    };
}
