using Microsoft.Extensions.Logging;

namespace HttpUtil;

/// <summary>The logger a <see cref="ReverseProxy"/> uses when it has none and the host offers none: one line per
/// entry on standard error (Go's default <c>ErrorLog</c>), Information and above.</summary>
internal sealed class StandardErrorLogger : ILogger
{
    public static StandardErrorLogger Instance { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        var line = $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} httputil: reverse proxy: {formatter(state, exception)}";
        if (exception is not null) line += $": {exception.Message}";
        Console.Error.WriteLine(line);
    }
}
