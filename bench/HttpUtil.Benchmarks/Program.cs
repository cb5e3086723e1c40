using BenchmarkDotNet.Running;
using HttpUtil.Benchmarks;

if (args.Length == 2 && args[0] == "--loop")
{
    // For profilers (perf, dotnet-trace): runs one connection benchmark in a loop for N seconds.
    var b = new ConnectionBenchmarks();
    await b.Setup();
    var until = DateTime.UtcNow.AddSeconds(double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture));
    var batches = 0;
    while (DateTime.UtcNow < until)
    {
        await b.ClientConnToServerConnDepth16();
        batches++;
    }
    await b.Cleanup();
    Console.WriteLine($"{batches * 16} requests");
    return;
}

if (args.Length == 3 && args[0] == "--loop-post")
{
    // For profilers: POST 64 KiB through Transport ("ours") or SocketsHttpHandler ("sockets") for N seconds.
    var t = new TransportBenchmarks();
    await t.Setup();
    var until = DateTime.UtcNow.AddSeconds(double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture));
    var batches = 0;
    while (DateTime.UtcNow < until)
    {
        await (args[1] == "ours" ? t.Post64KibTransport() : t.Post64KibSocketsHttpHandler());
        batches++;
    }
    await t.Cleanup();
    Console.WriteLine($"{batches * 16} requests");
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(WireFormatBenchmarks).Assembly).Run(args);
