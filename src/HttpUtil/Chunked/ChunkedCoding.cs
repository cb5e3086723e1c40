namespace HttpUtil;

/// <summary>
/// Go's <c>NewChunkedReader</c> and <c>NewChunkedWriter</c>: the chunked transfer coding (RFC 9112 section 7.1)
/// over any stream, for code that frames bodies itself (a hijacked connection, a file of captured traffic, a
/// test peer). Connections, <see cref="Transport"/> and <see cref="ReverseProxy"/> code and decode chunks on
/// their own; these are for everything else.
/// </summary>
public static class ChunkedCoding
{
    /// <summary>A stream that reads the chunked body at the start of <paramref name="source"/> and returns its data.</summary>
    /// <param name="source">Where the chunked bytes come from; left open when the reader is disposed.</param>
    /// <returns>The reader. It returns 0 after the last-chunk and its trailers (then in
    /// <see cref="ChunkedReadStream.Trailers"/>); a malformed chunk, or a source that ends first, throws
    /// <see cref="MalformedMessageException"/>.</returns>
    public static ChunkedReadStream NewChunkedReader(Stream source) => new(source);

    /// <summary>A stream that writes each write to <paramref name="destination"/> as one chunk.</summary>
    /// <param name="destination">Where the chunks go; left open when the writer is disposed.</param>
    /// <returns>The writer. <see cref="ChunkedWriteStream.CompleteAsync"/> (or disposing it) writes the last-chunk,
    /// any trailers and the final empty line.</returns>
    public static ChunkedWriteStream NewChunkedWriter(Stream destination) => new(destination);
}
