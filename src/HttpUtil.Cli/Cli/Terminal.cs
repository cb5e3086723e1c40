using Spectre.Console;

namespace HttpUtil.Cli;

/// <summary>The console the commands draw on.</summary>
public static class Terminal
{
    /// <summary>Standard output with colours and styles when it is a terminal, and plain text when it is redirected
    /// (a file, a pipe, a test), so that what a script reads has no escape codes.</summary>
    /// <returns>The console.</returns>
    public static IAnsiConsole Create()
    {
        var redirected = Console.IsOutputRedirected;
        return AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Out = new AnsiConsoleOutput(Console.Out),
        });
    }
}
