namespace CsiCache.Cache.Tests;

/// <summary>A directory under the temp root, deleted with everything in it on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory(string? parent = null)
    {
        Path = System.IO.Path.Combine(parent ?? System.IO.Path.GetTempPath(), "csicache-cache-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}

/// <summary>
/// A fake origin object whose bytes are a function of (seed, offset), so any byte read back can
/// be checked independently of the cache, and a misplaced chunk shows up as wrong bytes.
/// </summary>
internal sealed class TestObject
{
    private long _fetches;

    public TestObject(string path, long size, string version = "v1", int seed = 0)
    {
        Path = path;
        Size = size;
        Version = version;
        Seed = seed;
        Key = ObjectKey.From("test://origin", path, version);
    }

    public string Path { get; }

    public long Size { get; }

    public string Version { get; }

    public int Seed { get; }

    public ObjectKey Key { get; }

    public long Fetches => Interlocked.Read(ref _fetches);

    public static byte ByteAt(int seed, long offset)
    {
        ulong x = (ulong)offset * 0x9E3779B97F4A7C15UL ^ (ulong)seed * 0xC2B2AE3D27D4EB4FUL;
        x ^= x >> 29;
        return (byte)(x * 0xBF58476D1CE4E5B9UL >> 56);
    }

    public void Fill(long offset, Span<byte> destination)
    {
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = ByteAt(Seed, offset + i);
        }
    }

    public byte[] Expected(long offset, int count)
    {
        var bytes = new byte[count];
        Fill(offset, bytes);
        return bytes;
    }

    /// <summary>A fetch callback for chunk <paramref name="index"/> that counts its calls.</summary>
    public Func<Memory<byte>, CancellationToken, ValueTask> FetchChunk(long index, int chunkSize) => (buffer, _) =>
    {
        Interlocked.Increment(ref _fetches);
        Fill(index * chunkSize, buffer.Span);
        return ValueTask.CompletedTask;
    };

    public ChunkKey Chunk(long index) => new(Key, index);

    /// <summary>Reads [offset, offset + count) of the object through the cache, chunk by chunk.</summary>
    public async Task<byte[]> ReadAsync(ChunkCache cache, long offset, int count)
    {
        var result = new byte[count];
        int done = 0;
        while (done < count)
        {
            long position = offset + done;
            long index = position / cache.ChunkSize;
            int length = cache.GetChunkLength(Size, index);
            using ChunkLease lease = await cache.GetOrFetchAsync(Chunk(index), length, FetchChunk(index, cache.ChunkSize), CancellationToken.None);
            int read = lease.Read(position - (index * cache.ChunkSize), result.AsSpan(done));
            Assert.True(read > 0, $"no progress at {position}");
            done += read;
        }
        return result;
    }
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualTimeProvider(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

internal static class Wait
{
    /// <summary>Polls until <paramref name="condition"/> holds or the timeout passes; returns the last evaluation.</summary>
    public static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return condition();
            }
            await Task.Delay(10);
        }
        return true;
    }
}
