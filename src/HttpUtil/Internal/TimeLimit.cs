namespace HttpUtil;

/// <summary>
/// One operation bounded in time: it runs with a token that the caller's token cancels and that also cancels when the
/// limit passes; an expiry becomes the exception the caller names (a <see cref="TimeoutException"/> naming the
/// setting), while the caller's own cancellation still surfaces as <see cref="OperationCanceledException"/>. The
/// connect, TLS handshake and response-head deadlines of <see cref="Transport"/> are all this.
/// </summary>
internal static class TimeLimit
{
    /// <summary>Runs <paramref name="operation"/> with <paramref name="state"/>, within <paramref name="limit"/> (null: no
    /// limit beyond <paramref name="ct"/>); past it throws what <paramref name="expired"/> makes of the state.</summary>
    public static async ValueTask<TResult> RunAsync<TState, TResult>(TState state, Func<TState, CancellationToken, ValueTask<TResult>> operation,
        TimeSpan? limit, Func<TState, Exception> expired, CancellationToken ct)
    {
        if (limit is not { } within) return await operation(state, ct).ConfigureAwait(false);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(within);
        try
        {
            return await operation(state, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw expired(state);
        }
    }

    /// <summary>A time-limit setting's value: positive, or null for no limit. Zero or negative throws
    /// <see cref="ArgumentOutOfRangeException"/> (for the property's <c>value</c>).</summary>
    public static TimeSpan? PositiveOrNone(TimeSpan? value) =>
        value is null || value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(value));
}
