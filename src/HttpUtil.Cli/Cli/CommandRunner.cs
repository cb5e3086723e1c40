namespace HttpUtil.Cli;

/// <summary>Runs a command's body so that any failure a user can cause ends as one line on standard error and its exit
/// code, never a stack trace.</summary>
public static class CommandRunner
{
    /// <summary>Runs <paramref name="body"/>; a <see cref="CliException"/> prints its line and returns its code, and any other
    /// exception is described by <see cref="Failures.Describe"/> the same way.</summary>
    /// <param name="body">The command's work.</param>
    /// <returns>The exit code as an int.</returns>
    public static async Task<int> Guarded(Func<Task<ExitCode>> body)
    {
        try
        {
            return (int)await body();
        }
        catch (CliException e)
        {
            return Fail(e.Code, e.Message);
        }
        catch (OperationCanceledException)
        {
            return Fail(ExitCode.Failed, "cancelled");
        }
        catch (Exception e)
        {
            // Anything else still ends as one line; its kind picks the code.
            var (code, message) = Failures.Describe(e, "httputil");
            return Fail(code, message);
        }
    }

    /// <summary>Prints <c>httputil: message</c> on standard error; returns <paramref name="code"/>.</summary>
    /// <param name="code">The exit code.</param>
    /// <param name="message">The line.</param>
    /// <returns>The code as an int.</returns>
    public static int Fail(ExitCode code, string message)
    {
        Console.Error.WriteLine($"httputil: {message}");
        return (int)code;
    }
}
