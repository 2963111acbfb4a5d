using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cache.Tests;

/// <summary>
/// Chunks stored in part: <see cref="ChunkCache.ReadRangeAsync{TState}"/> fetches and stores only
/// the blocks (chunk size / 64) that hold the range read, as random readers of large files do.
/// </summary>
public sealed class PartialChunkTests : IDisposable
{
    private const int MiB = 1 << 20;
    private const int Block = MiB / 64; // the block of a 1 MiB chunk
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private ChunkCacheOptions Options(long quota = 1L << 30) => new()
    {
        RootDirectory = _dir.Path,
        QuotaBytes = quota,
        ChunkSize = MiB,
        MemoryLimitBytes = 64 * MiB,
        FlushToDisk = false,
    };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Range_FetchesOnlyTheBlocksHoldingIt_ThenServesThemWithoutAnotherFetch()
    {
        using var cache = new ChunkCache(Options());
        var origin = new RangeOrigin(new TestObject("shard", 3 * MiB));
        ChunkKey key = origin.Object.Chunk(1);

        byte[] read = await origin.ReadAsync(cache, 1, 100_000, 50_000);

        Assert.Equal(origin.Object.Expected(MiB + 100_000, 50_000), read);
        // Blocks 6..9 (98,304 to 163,840): the range's blocks, not the chunk.
        Assert.Equal([(MiB + (6L * Block), 4 * Block)], origin.Requests);
        Assert.True(await Wait.UntilAsync(() => cache.ContainsRange(key, 100_000, 50_000)), "the range was never stored");
        Assert.True(cache.ContainsRange(key, 6 * Block, 4 * Block));
        Assert.False(cache.ContainsRange(key, (6 * Block) - 1, 2));
        Assert.False(cache.ContainsRange(key, 10 * Block, 1));
        Assert.False(cache.Contains(key)); // not whole
        Assert.Equal(4 * Block, cache.GetStats().UsedBytes);

        // Inside the stored blocks: served, no fetch; TryRead agrees on what is there.
        Assert.Equal(origin.Object.Expected(MiB + (6 * Block) + 7, 3000), await origin.ReadAsync(cache, 1, (6 * Block) + 7, 3000));
        var buffer = new byte[Block];
        Assert.True(cache.TryRead(key, 7 * Block, buffer, out int n));
        Assert.Equal(Block, n);
        Assert.Equal(origin.Object.Expected(MiB + (7 * Block), Block), buffer);
        Assert.False(cache.TryRead(key, 11 * Block, buffer, out _));
        Assert.False(cache.TryGetCached(key, out _));
        Assert.Single(origin.Requests);
    }

    [Fact]
    public async Task Range_BlocksThatAddUpToTheChunk_MakeItWhole_AndAWholeObject()
    {
        using var cache = new ChunkCache(Options());
        var origin = new RangeOrigin(new TestObject("filled", MiB + (MiB / 2) + 5));
        using (ChunkLease first = await cache.GetOrFetchAsync(origin.Object.Chunk(0), MiB, origin.Object.FetchChunk(0, MiB), Ct))
        {
        }
        int length = cache.GetChunkLength(origin.Object.Size, 1); // the short last chunk, its last block short too
        ChunkKey key = origin.Object.Chunk(1);

        // Three overlapping ranges that cover it in the end.
        foreach ((int offset, int count) in new[] { (100, 200_000), (150_000, 300_000), (400_000, length - 400_000) })
        {
            Assert.Equal(origin.Object.Expected(MiB + offset, count), await origin.ReadAsync(cache, 1, offset, count));
            Assert.True(await Wait.UntilAsync(() => cache.ContainsRange(key, offset, count)));
        }

        Assert.True(cache.Contains(key));
        Assert.Equal(origin.Object.Size, cache.GetStats().UsedBytes);
        using (ChunkLease lease = await cache.GetOrFetchAsync(key, length, (_, _) => throw new InvalidOperationException("a whole chunk must not be fetched again"), Ct))
        {
            Assert.Equal(length, lease.Length);
        }
        Assert.True(cache.TryOpenWholeObject(origin.Object.Key, origin.Object.Size, out SafeFileHandle? whole));
        using (whole)
        {
            var bytes = new byte[origin.Object.Size];
            Assert.Equal(origin.Object.Size, RandomAccess.Read(whole, bytes, 0));
            Assert.Equal(origin.Object.Expected(0, (int)origin.Object.Size), bytes);
        }
    }

    [Fact]
    public async Task WholeFetch_OverAPartialChunk_ReplacesIt_BytesCountedOnce()
    {
        using var cache = new ChunkCache(Options());
        var origin = new RangeOrigin(new TestObject("upgrade", 2 * MiB));
        ChunkKey key = origin.Object.Chunk(1);
        await origin.ReadAsync(cache, 1, 5000, 10_000);
        Assert.True(await Wait.UntilAsync(() => cache.ContainsRange(key, 5000, 10_000)));
        Assert.False(cache.TryOpenWholeObject(origin.Object.Key, origin.Object.Size, out _));

        Assert.Equal(origin.Object.Expected(MiB, MiB), await origin.Object.ReadAsync(cache, MiB, MiB));

        Assert.True(cache.Contains(key));
        Assert.Equal(MiB, cache.GetStats().UsedBytes);
        Assert.Equal(1, cache.GetStats().ChunkCount);
        Assert.Equal(1, origin.Object.Fetches); // the whole chunk, once
    }

    [Fact]
    public async Task ChunkZero_IsAlwaysFetchedWhole_SoAOneChunkFileIsNeverPartial()
    {
        using (var cache = new ChunkCache(Options()))
        {
            var origin = new RangeOrigin(new TestObject("head", 4 * MiB));
            Assert.Equal(origin.Object.Expected(300_000, 1000), await origin.ReadAsync(cache, 0, 300_000, 1000));
            Assert.Equal([(0L, MiB)], origin.Requests);
            Assert.True(cache.Contains(origin.Object.Chunk(0)));
        }
        using var reopened = new ChunkCache(Options());
        var obj = new TestObject("head", 4 * MiB);
        Assert.True(reopened.Contains(obj.Chunk(0)));
        var bytes = new byte[MiB];
        Assert.True(reopened.TryRead(obj.Chunk(0), 0, bytes, out int n));
        Assert.Equal(MiB, n);
        Assert.Equal(obj.Expected(0, MiB), bytes); // no hole read back as zeros
    }

    [Fact]
    public async Task Restart_PartialChunks_ComeBackWithExactlyTheirBlocks()
    {
        var obj = new TestObject("restart", (3 * MiB) + 1234);
        // A range in chunk 1 and one that ends the object, in the short chunk 3.
        (long Index, int Offset, int Count)[] ranges = [(1, 3 * Block, 2 * Block), (3, 10, 1000)];
        using (var cache = new ChunkCache(Options()))
        {
            var origin = new RangeOrigin(obj);
            foreach ((long index, int offset, int count) in ranges)
            {
                await origin.ReadAsync(cache, index, offset, count);
                Assert.True(await Wait.UntilAsync(() => cache.ContainsRange(obj.Chunk(index), offset, count)));
            }
            Assert.Equal((2 * Block) + 1234, cache.GetStats().UsedBytes); // chunk 3 is one short block
        }

        using var reopened = new ChunkCache(Options());
        Assert.Equal(2, reopened.LoadedAtStart);
        Assert.Equal((2 * Block) + 1234, reopened.GetStats().UsedBytes);
        Assert.True(reopened.ContainsRange(obj.Chunk(1), 3 * Block, 2 * Block));
        Assert.False(reopened.ContainsRange(obj.Chunk(1), 2 * Block, 1));
        Assert.False(reopened.ContainsRange(obj.Chunk(1), 5 * Block, 1));
        Assert.False(reopened.Contains(obj.Chunk(1)));
        Assert.True(reopened.Contains(obj.Chunk(3))); // 1,234 bytes: its only block, stored
        Assert.False(reopened.ContainsRange(obj.Chunk(0), 0, 1));
        Assert.False(reopened.ContainsRange(obj.Chunk(2), 0, 1));

        // Served from the stored blocks at the chunk's real length: no fetch.
        var again = new RangeOrigin(obj);
        Assert.Equal(obj.Expected(MiB + (3 * Block) + 100, Block), await again.ReadAsync(reopened, 1, (3 * Block) + 100, Block));
        Assert.Empty(again.Requests);
    }

    [Fact]
    public async Task Restart_ARangeThatWasTheFilesLastData_StillHasItsChunksRealLength()
    {
        // Only a range inside chunk 1 of 4: without care the file would end with it, and the
        // scan would take chunk 1 for a short chunk of another length (a miss for its readers).
        var obj = new TestObject("mid", 4 * MiB);
        using (var cache = new ChunkCache(Options()))
        {
            await new RangeOrigin(obj).ReadAsync(cache, 1, 5 * Block, Block);
            Assert.True(await Wait.UntilAsync(() => cache.ContainsRange(obj.Chunk(1), 5 * Block, Block)));
        }
        Assert.Equal(2 * MiB, new FileInfo(Directory.GetFiles(Path.Combine(_dir.Path, "v2"), obj.Key.Hash, SearchOption.AllDirectories).Single()).Length);

        using var reopened = new ChunkCache(Options());
        var again = new RangeOrigin(obj);
        Assert.Equal(obj.Expected(MiB + (5 * Block), Block), await again.ReadAsync(reopened, 1, 5 * Block, Block));
        Assert.Empty(again.Requests);
        Assert.Equal(Block, reopened.GetStats().UsedBytes);
    }

    [Fact]
    public async Task Eviction_OfAPartialChunk_FreesItsBytes_AndItsRangeIsFetchedAgain()
    {
        using var cache = new ChunkCache(Options(quota: 2 * MiB));
        var origin = new RangeOrigin(new TestObject("evicted", 4 * MiB));
        await origin.ReadAsync(cache, 2, 1000, 2 * Block);
        ChunkKey key = origin.Object.Chunk(2);
        Assert.True(await Wait.UntilAsync(() => cache.ContainsRange(key, 1000, 2 * Block)));

        // Two whole chunks of other objects push it out (LRU).
        for (int i = 0; i < 2; i++)
        {
            var other = new TestObject("filler-" + i, MiB, seed: i + 1);
            using ChunkLease lease = await cache.GetOrFetchAsync(other.Chunk(0), MiB, other.FetchChunk(0, MiB), Ct);
        }
        cache.Trim();

        Assert.False(cache.ContainsRange(key, 1000, 2 * Block));
        Assert.True(cache.GetStats().UsedBytes <= 2 * MiB * 0.85);
        Assert.Equal(origin.Object.Expected((2 * MiB) + 1000, 10), await origin.ReadAsync(cache, 2, 1000, 10));
        Assert.Equal(2, origin.Requests.Count);
    }

    [Fact]
    public async Task ConcurrentRandomRanges_AlwaysRightBytes_AndTheBytesStoredAreTheBlocksRead()
    {
        using var cache = new ChunkCache(Options());
        var origin = new RangeOrigin(new TestObject("random", 8 * MiB, seed: 7));
        var rng = new Random(5);
        (long Index, int Offset, int Count)[] reads = Enumerable.Range(0, 400).Select(_ =>
        {
            long index = 1 + rng.Next(7);
            int offset = rng.Next(MiB - 1);
            return (index, offset, 1 + rng.Next(Math.Min(MiB - offset, 100_000)));
        }).ToArray();

        await Parallel.ForEachAsync(reads, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = Ct }, async (r, _) =>
        {
            byte[] bytes = await origin.ReadAsync(cache, r.Index, r.Offset, r.Count);
            Assert.Equal(origin.Object.Expected((r.Index * MiB) + r.Offset, r.Count), bytes);
        });

        // Once the stores behind the reads settle, exactly the blocks read are counted.
        long expected = Enumerable.Range(1, 7).Sum(index => reads.Where(r => r.Index == index)
            .SelectMany(r => Enumerable.Range(r.Offset / Block, ((r.Offset + r.Count - 1) / Block) - (r.Offset / Block) + 1))
            .Distinct().LongCount() * Block);
        Assert.True(await Wait.UntilAsync(() => cache.GetStats().UsedBytes == expected), $"used {cache.GetStats().UsedBytes}, expected {expected}");
        Assert.All(reads, r => Assert.True(cache.ContainsRange(origin.Object.Chunk(r.Index), r.Offset, r.Count)));
        Assert.Equal(0, cache.Budget.InUseBytes);
    }

    /// <summary>A test object's origin for ranged fetches, recording each (object offset, length) asked for.</summary>
    private sealed class RangeOrigin(TestObject obj)
    {
        private readonly List<(long Offset, int Length)> _requests = [];

        public TestObject Object => obj;

        public List<(long Offset, int Length)> Requests
        {
            get
            {
                lock (_requests)
                {
                    return [.. _requests];
                }
            }
        }

        public async Task<byte[]> ReadAsync(ChunkCache cache, long index, long offsetInChunk, int count)
        {
            var bytes = new byte[count];
            int length = cache.GetChunkLength(obj.Size, index);
            int n = await cache.ReadRangeAsync(obj.Chunk(index), length, offsetInChunk, bytes, (Origin: this, Start: index * cache.ChunkSize), static (s, from, buffer, _) =>
            {
                lock (s.Origin._requests)
                {
                    s.Origin._requests.Add((s.Start + from, buffer.Length));
                }
                s.Origin.Object.Fill(s.Start + from, buffer.Span);
                return ValueTask.CompletedTask;
            }, Ct);
            Assert.Equal(count, n);
            return bytes;
        }
    }
}
