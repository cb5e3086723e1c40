using HttpUtil.Core;

namespace HttpUtil;

/// <summary>Maps the core's connection errors to the exceptions the facade throws.</summary>
internal static class ConnErrors
{
    /// <summary>The exception for <paramref name="error"/>, raised from <paramref name="objectName"/>.</summary>
    public static Exception ToException(ConnError error, string objectName) => error switch
    {
        ConnError.Malformed m => new MalformedMessageException(m.Error),
        ConnError.Transport t => t.Cause is OperationCanceledException
            ? new IOException("an earlier operation on this connection was cancelled part way; the connection is broken", t.Cause)
            : new IOException($"the connection broke earlier: {t.Cause.Message}", t.Cause),
        ConnError.DrainLimit d => new DrainLimitException(d.Limit),
        ConnError.InvalidEvent i => new InvalidOperationException(i.Reason),
        _ when error.IsPersistEof => new PersistEofException(),
        _ when error.IsClosedByUser => new ConnectionClosedException(),
        _ when error.IsUseAfterClose => new ObjectDisposedException(objectName, "i/o operation on closed connection"),
        _ when error.IsPipelineMismatch => new PipelineException(),
        _ when error.IsEndOfInput => new EndOfStreamException("the peer closed the connection where a new message would start"),
        _ => new ProtocolException(error.ToString()),
    };
}
