// YARP 2.1.0 forwarding every request to one upstream, hosted as its docs show for direct forwarding: an
// IHttpForwarder with a SocketsHttpHandler tuned as YARP recommends, the default transformer (which adds the
// X-Forwarded-* fields, as our proxy adds X-Forwarded-For), Kestrel HTTP/1.1 on 127.0.0.1, logging off.
//   dotnet YarpPeer.dll --upstream URL --port P
using System.Diagnostics;
using System.Net;
using Yarp.ReverseProxy.Forwarder;

var upstream = args[Array.IndexOf(args, "--upstream") + 1];
var port = int.Parse(args[Array.IndexOf(args, "--port") + 1]);
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port));
builder.Services.AddHttpForwarder();
var app = builder.Build();
var invoker = new HttpMessageInvoker(new SocketsHttpHandler
{
    UseProxy = false,
    AllowAutoRedirect = false,
    AutomaticDecompression = DecompressionMethods.None,
    UseCookies = false,
    ActivityHeadersPropagator = null,
    ConnectTimeout = TimeSpan.FromSeconds(15),
});
var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
var config = new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromSeconds(100) };
app.Run(async context =>
{
    var error = await forwarder.SendAsync(context, upstream, invoker, config, HttpTransformer.Default);
    if (error != ForwarderError.None) Debug.WriteLine(error);
});
await app.StartAsync();
Console.WriteLine("ready");
await Task.Delay(Timeout.Infinite, app.Lifetime.ApplicationStopping).ContinueWith(_ => { });
