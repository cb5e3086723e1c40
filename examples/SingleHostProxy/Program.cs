using HttpUtil;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

// A backend on 127.0.0.1 (any free port).
var backend = WebApplication.CreateSlimBuilder();
backend.Logging.ClearProviders();
backend.WebHost.UseUrls("http://127.0.0.1:0");
var backendApp = backend.Build();
backendApp.Run(context => context.Response.WriteAsync("this call was relayed by the reverse proxy"));
await backendApp.StartAsync();
var backendUrl = new Uri(backendApp.Urls.First());

// The proxy in front of it: every path goes to the backend.
var front = WebApplication.CreateSlimBuilder();
front.Logging.ClearProviders();
front.WebHost.UseUrls("http://127.0.0.1:0");
var frontApp = front.Build();
frontApp.MapReverseProxy("/{**rest}", ReverseProxy.NewSingleHost(backendUrl));
await frontApp.StartAsync();

// A client asks the proxy and reads exactly what the backend said.
using var client = new HttpClient();
var text = await client.GetStringAsync(frontApp.Urls.First());
Console.WriteLine(text);

await frontApp.StopAsync();
await backendApp.StopAsync();
return text == "this call was relayed by the reverse proxy" ? 0 : 1;
