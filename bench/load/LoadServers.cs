using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace HttpUtil.Load;

/// <summary>Two minimal servers answering every request with the same body: one on <see cref="ServerConn"/>,
/// one on Kestrel, for wrk to load side by side.</summary>
internal static class LoadServers
{
    public static async Task<int> RunAsync(Options o)
    {
        var impl = o.Get("impl");
        var port = o.GetInt("port", 0);
        var body = new byte[o.GetInt("size", 1024)];
        Array.Fill(body, (byte)'x');
        return impl switch
        {
            "serverconn" => await ServerConnAsync(port, body),
            "kestrel" => await KestrelAsync(port, body),
            _ => throw new ArgumentException($"unknown server '{impl}' (serverconn or kestrel)"),
        };
    }

    private static async Task<int> ServerConnAsync(int port, byte[] body)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        listener.Listen(512);
        Console.WriteLine("ready");
        while (true)
        {
            var socket = await listener.AcceptAsync();
            socket.NoDelay = true;
            _ = ServeAsync(socket, body);
        }
    }

    private static async Task ServeAsync(Socket socket, byte[] body)
    {
        await using var conn = new ServerConn(new NetworkStream(socket, ownsSocket: true));
        try
        {
            while (true)
            {
                var request = await conn.ReadAsync();
                using var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) };
                response.Content.Headers.ContentType = new("text/plain");
                await conn.WriteAsync(request, response);
            }
        }
        catch (Exception ex) when (ex is PersistEofException or EndOfStreamException or IOException or ObjectDisposedException)
        {
            // The client went away.
        }
    }

    private static async Task<int> KestrelAsync(int port, byte[] body)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        app.Run(context =>
        {
            context.Response.ContentType = "text/plain";
            context.Response.ContentLength = body.Length;
            return context.Response.Body.WriteAsync(body).AsTask();
        });
        await app.StartAsync();
        Console.WriteLine("ready");
        await Task.Delay(Timeout.Infinite, app.Lifetime.ApplicationStopping).ContinueWith(_ => { });
        return 0;
    }
}
