using System.CommandLine;

namespace HttpUtil.Cli;

/// <summary>The <c>httputil</c> command: wiring only; each command lives in <c>Commands/</c>.</summary>
public static class Program
{
    /// <summary>Runs the command line; returns the process exit code (0 ok, 1 invalid input, 2 usage).</summary>
    /// <param name="args">The arguments.</param>
    /// <returns>The exit code.</returns>
    public static int Main(string[] args)
    {
        var root = new RootCommand("httputil: Go's net/http/httputil and httptrace for .NET")
        {
            ParseCommand.Create(),
            DemoCommand.Create(),
            TraceCommand.Create(),
        };
        return root.Parse(args).Invoke();
    }
}
