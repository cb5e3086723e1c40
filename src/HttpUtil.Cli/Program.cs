using System.CommandLine;

namespace HttpUtil.Cli;

/// <summary>The <c>httputil</c> command: wiring only; each command lives in <c>Commands/</c>.</summary>
public static class Program
{
    /// <summary>The root command with every subcommand.</summary>
    /// <returns>The root command.</returns>
    public static RootCommand Root() => new($"httputil: Go's net/http/httputil and httptrace for .NET.\n\n{ExitCodes.Help}")
    {
        TraceCommand.Create(),
        DumpCommand.Create(),
        ProxyCommand.Create(),
        DemoCommand.Create(),
        ParseCommand.Create(),
    };

    /// <summary>Runs the command line; returns the process exit code (see <see cref="ExitCode"/>).</summary>
    /// <param name="args">The arguments.</param>
    /// <returns>The exit code.</returns>
    public static async Task<int> Main(string[] args)
    {
        // No response files: '@file' is curl's way to name a body (-d @file), not more arguments.
        var parsed = Root().Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        // A usage error is one line and code 2, not the help text and code 1.
        if (parsed.Errors.Count > 0) return CommandRunner.Fail(ExitCode.Usage, $"{parsed.Errors[0].Message} (see httputil --help)");
        // Ctrl+C and SIGTERM are left to each command: proxy stops gracefully, the others end at once.
        return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }
}
