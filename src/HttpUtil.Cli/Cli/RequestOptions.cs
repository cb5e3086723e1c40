using System.CommandLine;
using System.Text;

namespace HttpUtil.Cli;

/// <summary>What to send, as <c>trace</c> and <c>dump</c> take it: a URL, <c>-X</c>, <c>-H</c>, <c>-d</c>, <c>-k</c>, <c>-m</c>
/// (curl's letters).</summary>
public sealed class RequestOptions
{
    private readonly Argument<string> url = new("url") { Description = "An absolute http or https URL." };
    private readonly Option<string?> method = new("--request", "-X") { Description = "The method (GET, or POST with -d)." };
    private readonly Option<string[]> headers = new("--header", "-H")
    {
        Description = "A request field, 'Name: value'; repeat for more.",
        AllowMultipleArgumentsPerToken = false,
    };
    private readonly Option<string?> data = new("--data", "-d") { Description = "A request body: the text itself, or @file for a file's bytes." };
    private readonly Option<bool> insecure = new("--insecure", "-k") { Description = "Accept any server certificate." };
    private readonly Option<double> maxTime = new("--max-time", "-m")
    {
        Description = "Give up after this many seconds.",
        DefaultValueFactory = _ => 30,
    };

    /// <summary>Adds the argument and options to <paramref name="command"/>.</summary>
    /// <param name="command">The command.</param>
    public void AddTo(Command command)
    {
        command.Arguments.Add(url);
        foreach (var o in new Option[] { method, headers, data, insecure, maxTime }) command.Options.Add(o);
    }

    /// <summary>Reads the values; throws <see cref="CliException"/> for a bad URL (3), a bad header or time (2) or an
    /// unreadable file (4).</summary>
    /// <param name="result">The parse result.</param>
    /// <returns>The request to send.</returns>
    public RequestSpec Read(ParseResult result)
    {
        var text = result.GetValue(url) ?? "";
        if (!Uri.TryCreate(text, UriKind.Absolute, out var target) || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps)
            || target.Host.Length == 0)
            throw new CliException(ExitCode.BadUrl, $"'{text}' is not an absolute http or https URL");
        var fields = new List<(string, string)>();
        foreach (var h in result.GetValue(headers) ?? [])
        {
            var colon = h.IndexOf(':');
            if (colon <= 0) throw new CliException(ExitCode.Usage, $"-H '{h}' is not 'Name: value'");
            fields.Add((h[..colon].Trim(), h[(colon + 1)..].Trim()));
        }
        byte[]? body = null;
        if (result.GetValue(data) is { } d)
        {
            if (d.StartsWith('@'))
            {
                try
                {
                    body = File.ReadAllBytes(d[1..]);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
                {
                    throw new CliException(ExitCode.BadFile, $"-d {d}: {e.Message}");
                }
            }
            else body = Encoding.UTF8.GetBytes(d);
        }
        var seconds = result.GetValue(maxTime);
        if (!(seconds > 0) || double.IsInfinity(seconds)) throw new CliException(ExitCode.Usage, $"--max-time {seconds} is not a positive number of seconds");
        return new RequestSpec(target, result.GetValue(method) ?? (body is null ? "GET" : "POST"), fields, body, result.GetValue(insecure),
            TimeSpan.FromSeconds(seconds));
    }
}

/// <summary>A request as given on the command line; <see cref="Build"/> makes a fresh message each time.</summary>
/// <param name="Url">The URL.</param>
/// <param name="Method">The method.</param>
/// <param name="Fields">The <c>-H</c> fields, in order.</param>
/// <param name="Body">The body, or null.</param>
/// <param name="Insecure">Accept any server certificate.</param>
/// <param name="MaxTime">The deadline for the whole exchange.</param>
public sealed record RequestSpec(Uri Url, string Method, IReadOnlyList<(string Name, string Value)> Fields, byte[]? Body, bool Insecure, TimeSpan MaxTime)
{
    /// <summary>"GET http://host/path", for messages.</summary>
    public string What => $"{Method} {Url}";

    /// <summary>The same request to another URL (the warm-up sends it to a loopback server).</summary>
    /// <param name="url">The URL.</param>
    /// <returns>The copy.</returns>
    public RequestSpec To(Uri url) => this with { Url = url };

    /// <summary>Runs one exchange of this request under <see cref="MaxTime"/>: <paramref name="exchange"/> gets a token
    /// that is cancelled at the deadline. Passing the deadline throws <see cref="CliException"/> with
    /// <see cref="ExitCode.Timeout"/>; any other failure, a <see cref="CliException"/> with the code
    /// <see cref="Failures.Describe"/> picks.</summary>
    /// <param name="exchange">The work.</param>
    /// <param name="ct">The caller's cancellation (not turned into a timeout).</param>
    /// <returns>When the exchange is done.</returns>
    public async Task WithinMaxTimeAsync(Func<CancellationToken, Task> exchange, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(MaxTime);
        try
        {
            await exchange(deadline.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw new CliException(ExitCode.Timeout, $"{What}: no complete response within --max-time {MaxTime.TotalSeconds:0.###} s");
        }
        catch (Exception e) when (e is not CliException and not OperationCanceledException)
        {
            var (code, message) = Failures.Describe(e, What);
            throw new CliException(code, message);
        }
    }

    /// <summary>A new message for this request. A body without a <c>Content-Type</c> field is sent as
    /// <c>application/x-www-form-urlencoded</c>, as curl does.</summary>
    /// <returns>The message.</returns>
    /// <exception cref="CliException">A field name or value is not valid (exit code 2).</exception>
    public HttpRequestMessage Build()
    {
        var request = new HttpRequestMessage(new HttpMethod(Method), Url);
        if (Body is not null)
        {
            request.Content = new ByteArrayContent(Body);
            if (!Fields.Any(f => f.Name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase)))
                request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/x-www-form-urlencoded");
        }
        foreach (var (name, value) in Fields)
        {
            bool added;
            try
            {
                added = request.Headers.TryAddWithoutValidation(name, value)
                    || (request.Content ??= new ByteArrayContent([])).Headers.TryAddWithoutValidation(name, value);
            }
            catch (FormatException e)
            {
                throw new CliException(ExitCode.Usage, $"-H '{name}: {value}': {e.Message}");
            }
            if (!added) throw new CliException(ExitCode.Usage, $"-H '{name}: {value}' is not a valid field");
        }
        return request;
    }
}
