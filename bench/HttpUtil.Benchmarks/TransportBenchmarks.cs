using System.Net;
using System.Net.Http;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace HttpUtil.Benchmarks;

/// <summary>
/// HttpClient over our Transport against HttpClient over SocketsHttpHandler, same Kestrel on
/// loopback, same run: GET with a 1 KiB response and POST of 64 KiB, one request at a time on a
/// kept-alive connection, with and without a trace that sets every hook. Each operation is a batch
/// of 16 requests; allocations count client and server (both in process).
/// </summary>
[MemoryDiagnoser]
public class TransportBenchmarks
{
    private const int Batch = 16;
    private static readonly byte[] Kib = new byte[1024];
    private static readonly byte[] Upload = new byte[64 * 1024];

    private WebApplication? kestrel;
    private HttpClient? sockets;
    private HttpClient? ours;
    private Uri? getUri;
    private Uri? postUri;
    private long hookCalls;
    private ClientTrace? fullTrace;

    [GlobalSetup]
    public async Task Setup()
    {
        (kestrel, var address) = await BenchKestrel.StartAsync(async ctx =>
        {
            if (ctx.Request.Method == "POST")
            {
                var buffer = new byte[16 * 1024];
                long total = 0;
                int n;
                while ((n = await ctx.Request.Body.ReadAsync(buffer)) > 0) total += n;
                ctx.Response.ContentLength = 2;
                await ctx.Response.WriteAsync(total == Upload.Length ? "ok" : "no");
                return;
            }
            ctx.Response.ContentLength = Kib.Length;
            await ctx.Response.Body.WriteAsync(Kib);
        });
        getUri = new Uri(address + "/get");
        postUri = new Uri(address + "/post");
        sockets = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        ours = new HttpClient(new Transport());
        void Hit() => Interlocked.Increment(ref hookCalls);
        fullTrace = new ClientTrace
        {
            GetConn = _ => Hit(), GotConn = _ => Hit(), PutIdleConn = _ => Hit(), GotFirstResponseByte = Hit,
            Got100Continue = Hit, Got1xxResponse = _ => Hit(), DnsStart = _ => Hit(), DnsDone = _ => Hit(),
            ConnectStart = _ => Hit(), ConnectDone = _ => Hit(), TlsHandshakeStart = Hit, TlsHandshakeDone = _ => Hit(),
            WroteHeaderField = _ => Hit(), WroteHeaders = Hit, Wait100Continue = Hit, WroteRequest = _ => Hit(),
        };
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        sockets?.Dispose();
        ours?.Dispose();
        if (kestrel is not null) await kestrel.DisposeAsync();
    }

    private async Task GetAsync(HttpClient client, bool traced)
    {
        for (var i = 0; i < Batch; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, getUri);
            if (traced) request.WithClientTrace(fullTrace!);
            using var response = await client.SendAsync(request);
            await response.Content.ReadAsByteArrayAsync();
        }
    }

    private async Task PostAsync(HttpClient client, bool traced)
    {
        for (var i = 0; i < Batch; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, postUri) { Content = new ByteArrayContent(Upload) };
            if (traced) request.WithClientTrace(fullTrace!);
            using var response = await client.SendAsync(request);
            await response.Content.ReadAsByteArrayAsync();
        }
    }

    /// <summary>Reference: SocketsHttpHandler, GET 1 KiB.</summary>
    [Benchmark(OperationsPerInvoke = Batch, Baseline = true)]
    public Task Get1KibSocketsHttpHandler() => GetAsync(sockets!, false);

    /// <summary>Transport, GET 1 KiB.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public Task Get1KibTransport() => GetAsync(ours!, false);

    /// <summary>Transport with every hook set, GET 1 KiB.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public Task Get1KibTransportTraced() => GetAsync(ours!, true);

    /// <summary>Reference: SocketsHttpHandler, POST 64 KiB.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public Task Post64KibSocketsHttpHandler() => PostAsync(sockets!, false);

    /// <summary>Transport, POST 64 KiB.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public Task Post64KibTransport() => PostAsync(ours!, false);

    /// <summary>Transport with every hook set, POST 64 KiB.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public Task Post64KibTransportTraced() => PostAsync(ours!, true);
}
