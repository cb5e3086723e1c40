using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace HttpUtil.Benchmarks;

/// <summary>
/// Requests per second on one keep-alive loopback TCP connection: ClientConn to ServerConn at
/// pipeline depth 1 (write, read, repeat) and 16 (write 16, then read 16); HttpClient
/// (SocketsHttpHandler) to Kestrel and ClientConn to Kestrel in the same run as references. Each
/// operation is a batch of 16 GETs with a 64-byte response body that is read to the end; allocations
/// count client and server together (both run in this process).
/// </summary>
[MemoryDiagnoser]
public class ConnectionBenchmarks
{
    private const int Batch = 16;
    private static readonly byte[] Body = new byte[64];

    private TcpListener? listener;
    private ClientConn? client;
    private Task? serving;
    private WebApplication? kestrel;
    private HttpClient? httpClient;
    private ClientConn? kestrelClient;
    private Uri? kestrelUri;
    private readonly HttpRequestMessage[] requests = new HttpRequestMessage[Batch];
    private readonly byte[] sink = new byte[256];

    [GlobalSetup]
    public async Task Setup()
    {
        listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var tcp = new TcpClient { NoDelay = true };
        var connect = tcp.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        var accepted = await listener.AcceptTcpClientAsync();
        await connect;
        accepted.NoDelay = true;
        client = new ClientConn(tcp.GetStream());
        serving = ServeAsync(new ServerConn(accepted.GetStream()));

        (kestrel, var address) = await BenchKestrel.StartAsync(async ctx =>
        {
            ctx.Response.ContentLength = Body.Length;
            await ctx.Response.Body.WriteAsync(Body);
        });
        kestrelUri = new Uri(address + "/bench");
        httpClient = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1, UseProxy = false });
        var ktcp = new TcpClient { NoDelay = true };
        await ktcp.ConnectAsync(IPAddress.Loopback, kestrelUri.Port);
        kestrelClient = new ClientConn(ktcp.GetStream());
    }

    /// <summary>Reads ahead: each response is handed to WriteAsync (which keeps request order) while
    /// the next request is read, so pipelined responses share flushes.</summary>
    private static async Task ServeAsync(ServerConn conn)
    {
        try
        {
            while (true)
            {
                var req = await conn.ReadAsync();
                var resp = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(Body) };
                _ = conn.WriteAsync(req, resp).ContinueWith(t => _ = t.Exception, TaskContinuationOptions.OnlyOnFaulted);
            }
        }
        catch (Exception ex) when (ex is IOException or ProtocolException or ObjectDisposedException or EndOfStreamException)
        {
            // The benchmark closed the connection.
        }
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        client?.Close();
        if (serving is not null) await serving;
        listener?.Stop();
        kestrelClient?.Close();
        httpClient?.Dispose();
        if (kestrel is not null) await kestrel.DisposeAsync();
    }

    private async Task DrainAsync(HttpResponseMessage resp)
    {
        var s = await resp.Content.ReadAsStreamAsync();
        while (await s.ReadAsync(sink) > 0) { }
    }

    private HttpRequestMessage NewRequest(Uri uri) => new(HttpMethod.Get, uri);

    private static readonly Uri LocalUri = new("http://127.0.0.1/bench");

    /// <summary>ClientConn to ServerConn, one request in flight.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public async Task ClientConnToServerConnDepth1()
    {
        for (var i = 0; i < Batch; i++)
        {
            var resp = await client!.DoAsync(NewRequest(LocalUri));
            await DrainAsync(resp);
        }
    }

    private readonly Task[] writes = new Task[Batch];

    /// <summary>ClientConn to ServerConn, 16 requests written (issued together, so they share flushes)
    /// before the first read.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public async Task ClientConnToServerConnDepth16()
    {
        for (var i = 0; i < Batch; i++)
        {
            requests[i] = NewRequest(LocalUri);
            writes[i] = client!.WriteAsync(requests[i]);
        }
        await Task.WhenAll(writes);
        for (var i = 0; i < Batch; i++)
        {
            await DrainAsync(await client!.ReadAsync(requests[i]));
        }
    }

    /// <summary>Reference: HttpClient (SocketsHttpHandler, one connection) to Kestrel.</summary>
    [Benchmark(OperationsPerInvoke = Batch, Baseline = true)]
    public async Task HttpClientToKestrel()
    {
        for (var i = 0; i < Batch; i++)
        {
            using var resp = await httpClient!.GetAsync(kestrelUri, HttpCompletionOption.ResponseHeadersRead);
            await DrainAsync(resp);
        }
    }

    /// <summary>Reference: ClientConn to Kestrel, one request in flight (same server as HttpClient).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public async Task ClientConnToKestrelDepth1()
    {
        for (var i = 0; i < Batch; i++)
        {
            var resp = await kestrelClient!.DoAsync(NewRequest(kestrelUri!));
            await DrainAsync(resp);
        }
    }

    /// <summary>Reference: ClientConn to Kestrel, 16 requests written before the first read.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public async Task ClientConnToKestrelDepth16()
    {
        for (var i = 0; i < Batch; i++)
        {
            requests[i] = NewRequest(kestrelUri!);
            writes[i] = kestrelClient!.WriteAsync(requests[i]);
        }
        await Task.WhenAll(writes);
        for (var i = 0; i < Batch; i++)
        {
            await DrainAsync(await kestrelClient!.ReadAsync(requests[i]));
        }
    }
}
