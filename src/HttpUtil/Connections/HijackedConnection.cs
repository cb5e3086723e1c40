using System.IO.Pipelines;

namespace HttpUtil;

/// <summary>
/// A connection taken over with <c>HijackAsync</c>: the stream, and the reader that still holds every byte
/// read from the stream but not yet consumed (the start of the next message, or tunnel data). Read
/// through <see cref="Reader"/> first; writing goes to <see cref="Stream"/>. The caller owns both.
/// </summary>
/// <param name="Stream">The connection's stream.</param>
/// <param name="Reader">The pipe reader over the stream, holding any unread input.</param>
public readonly record struct HijackedConnection(Stream Stream, System.IO.Pipelines.PipeReader Reader);
