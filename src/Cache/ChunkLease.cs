using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cache;

/// <summary>
/// A pinned chunk: while any lease on a chunk is held it is never evicted, and its bytes stay
/// readable even if a newer copy replaces the file. Dispose exactly once; reads after that throw.
/// Reads are positional (pread) and allocate nothing, so one lease may serve many readers at once.
/// </summary>
public sealed class ChunkLease : IDisposable
{
    private readonly ChunkSource _source;
    private readonly SafeFileHandle? _handle;
    private readonly ReadOnlyMemory<byte> _memory;
    private readonly ChunkStore? _store;
    private readonly long _fileOffset;
    private readonly bool _fromMemory;
    private int _disposed;

    internal ChunkLease(ChunkEntry entry, ChunkStore store)
    {
        _source = entry;
        _handle = entry.Handle ?? throw new InvalidOperationException("A pinned chunk has an open handle.");
        _fileOffset = entry.FileOffset;
        _store = store;
    }

    internal ChunkLease(MemoryChunk chunk)
    {
        _source = chunk;
        _memory = chunk.Data;
        _fromMemory = true;
    }

    internal ChunkLease(FreshChunk chunk, ChunkStore store)
    {
        _source = chunk;
        _handle = chunk.Entry.Handle ?? throw new InvalidOperationException("A pinned chunk has an open handle.");
        _fileOffset = chunk.Entry.FileOffset;
        _store = store;
        _memory = chunk.Data;
        _fromMemory = true;
    }

    /// <summary>Which chunk this is.</summary>
    public ChunkKey Key => _source.Key;

    /// <summary>Bytes in the chunk (the last chunk of an object may be short).</summary>
    public int Length => _source.Length;

    /// <summary>The object file holding the chunk at <see cref="FileOffset"/>, or null when the chunk could not be stored and is served from memory.</summary>
    public string? FilePath => _store?.GetPath(Key.Object);

    /// <summary>Where the chunk starts in <see cref="FilePath"/>.</summary>
    public long FileOffset => _fileOffset;

    /// <summary>
    /// Copies bytes from <paramref name="offsetInChunk"/> into <paramref name="destination"/>;
    /// returns how many (fewer only at the end of the chunk, 0 at or past it).
    /// </summary>
    /// <exception cref="IOException">The object file is shorter than indexed (changed behind the cache's back).</exception>
    public int Read(long offsetInChunk, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ArgumentOutOfRangeException.ThrowIfNegative(offsetInChunk);
        if (offsetInChunk >= Length)
        {
            return 0;
        }
        int wanted = (int)Math.Min(destination.Length, Length - offsetInChunk);
        if (_fromMemory)
        {
            _memory.Span.Slice((int)offsetInChunk, wanted).CopyTo(destination);
            return wanted;
        }
        return ReadFile(_handle!, _fileOffset + offsetInChunk, destination[..wanted]);
    }

    /// <summary>Unpins the chunk.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _source.Release();
        }
    }

    internal static int ReadFile(SafeFileHandle handle, long offset, Span<byte> destination)
    {
        int total = 0;
        while (total < destination.Length)
        {
            int read = RandomAccess.Read(handle, destination[total..], offset + total);
            if (read == 0)
            {
                throw new IOException($"Object file is shorter than indexed: wanted {destination.Length} bytes at {offset}, got {total}.");
            }
            total += read;
        }
        return total;
    }
}
