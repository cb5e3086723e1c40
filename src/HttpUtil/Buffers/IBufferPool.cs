using System.Buffers;

namespace HttpUtil;

/// <summary>
/// Byte arrays a <see cref="ReverseProxy"/> copies bodies through (Go's <c>httputil.BufferPool</c>). A pool may be
/// called from many requests at once, so it must be thread-safe.
/// </summary>
public interface IBufferPool
{
    /// <summary>An array of at least <paramref name="minimumLength"/> bytes; its contents are undefined.</summary>
    /// <param name="minimumLength">The least length wanted.</param>
    /// <returns>The array, owned by the caller until <see cref="Return"/>.</returns>
    byte[] Rent(int minimumLength);

    /// <summary>Gives back an array from <see cref="Rent"/>; the caller must not touch it afterwards.</summary>
    /// <param name="buffer">The array.</param>
    void Return(byte[] buffer);
}

/// <summary>The default <see cref="IBufferPool"/>: <see cref="ArrayPool{T}.Shared"/>.</summary>
public sealed class SharedBufferPool : IBufferPool
{
    private SharedBufferPool()
    {
    }

    /// <summary>The one instance.</summary>
    public static SharedBufferPool Instance { get; } = new();

    /// <inheritdoc />
    public byte[] Rent(int minimumLength) => ArrayPool<byte>.Shared.Rent(minimumLength);

    /// <inheritdoc />
    public void Return(byte[] buffer) => ArrayPool<byte>.Shared.Return(buffer);
}
