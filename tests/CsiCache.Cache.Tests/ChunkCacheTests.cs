using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cache.Tests;

public sealed class ChunkCacheTests : IDisposable
{
    private const int MiB = 1 << 20;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private ChunkCacheOptions Options(long quota = 1L << 30, int chunkSize = MiB, long memory = 64 * MiB, bool flush = false, TimeSpan? syncInterval = null) => new()
    {
        RootDirectory = _dir.Path,
        QuotaBytes = quota,
        ChunkSize = chunkSize,
        MemoryLimitBytes = memory,
        FlushToDisk = flush,
        SyncInterval = syncInterval ?? TimeSpan.FromSeconds(2),
    };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task GetOrFetch_ObjectOfSeveralChunks_ReadsBackExactBytesAcrossBoundaries()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("data/big.bin", (2 * MiB) + (MiB / 2) + 7);

        // Ranges that start and end inside chunks and straddle each boundary.
        (long Offset, int Count)[] ranges =
        [
            (0, 100),
            (MiB - 10, 20),
            ((2 * MiB) - 1, 2),
            (12345, (2 * MiB) + 1000),
            (0, (int)obj.Size),
            (obj.Size - 5, 5),
        ];
        foreach ((long offset, int count) in ranges)
        {
            byte[] actual = await obj.ReadAsync(cache, offset, count);
            Assert.Equal(obj.Expected(offset, count), actual);
        }

        Assert.Equal(3, obj.Fetches); // each chunk fetched once, every later read a hit
        CacheStats stats = cache.GetStats();
        Assert.Equal(3, stats.ChunkCount);
        Assert.Equal(obj.Size, stats.UsedBytes);
        Assert.Equal(obj.Size, stats.FetchBytes);
    }

    [Fact]
    public async Task GetOrFetch_LastChunk_IsShortAndReadsStopAtItsEnd()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("short-tail", MiB + 300);
        Assert.Equal(2, cache.GetChunkCount(obj.Size));
        Assert.Equal(300, cache.GetChunkLength(obj.Size, 1));

        using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(1), 300, obj.FetchChunk(1, MiB), Ct);
        Assert.Equal(300, lease.Length);
        Assert.Equal(lease.FileOffset + 300, new FileInfo(lease.FilePath!).Length); // chunk 1 ends the file

        var buffer = new byte[1000];
        Assert.Equal(100, lease.Read(200, buffer));
        Assert.Equal(obj.Expected(MiB + 200, 100), buffer[..100]);
        Assert.Equal(0, lease.Read(300, buffer));
        Assert.Equal(0, lease.Read(5000, buffer));
    }

    [Fact]
    public async Task GetOrFetch_64ConcurrentReadersOfOneMissingChunk_FetchOnceAndAllSeeSameBytes()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("hot", MiB);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int fetches = 0;

        async ValueTask Fetch(Memory<byte> buffer, CancellationToken ct)
        {
            Interlocked.Increment(ref fetches);
            // Hold the fetch open until every reader has asked, so all 64 really overlap.
            await release.Task.WaitAsync(ct);
            obj.Fill(0, buffer.Span);
        }

        var readers = new Task<byte[]>[64];
        for (int i = 0; i < readers.Length; i++)
        {
            readers[i] = Task.Run(async () =>
            {
                using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, Fetch, Ct);
                var bytes = new byte[lease.Length];
                Assert.Equal(MiB, lease.Read(0, bytes));
                return bytes;
            }, Ct);
        }
        Assert.True(await Wait.UntilAsync(() => cache.GetStats().Misses == 64), "all readers missed");
        release.SetResult();
        byte[][] results = await Task.WhenAll(readers);

        Assert.Equal(1, fetches);
        byte[] expected = obj.Expected(0, MiB);
        Assert.All(results, r => Assert.Equal(expected, r));
        Assert.Equal(1, cache.GetStats().Fetches);
    }

    [Fact]
    public async Task GetOrFetch_FetchFails_EveryWaiterSeesErrorNothingCachedLaterCallRefetches()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("flaky", MiB);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int fetches = 0;

        async ValueTask Failing(Memory<byte> buffer, CancellationToken ct)
        {
            Interlocked.Increment(ref fetches);
            await release.Task.WaitAsync(ct);
            throw new InvalidDataException("origin said no");
        }

        var waiters = Enumerable.Range(0, 16)
            .Select(_ => Task.Run(async () => await cache.GetOrFetchAsync(obj.Chunk(0), MiB, Failing, Ct), Ct))
            .ToArray();
        Assert.True(await Wait.UntilAsync(() => cache.GetStats().Misses == 16));
        release.SetResult();
        foreach (Task<ChunkLease> waiter in waiters)
        {
            var ex = await Assert.ThrowsAsync<InvalidDataException>(() => waiter);
            Assert.Equal("origin said no", ex.Message);
        }

        Assert.Equal(1, fetches);
        Assert.False(cache.Contains(obj.Chunk(0)));
        Assert.Equal(0, cache.GetStats().UsedBytes);
        Assert.Equal(1, cache.GetStats().FetchFailures);
        Assert.Equal(0, cache.Budget.InUseBytes); // the failed fetch gave its buffer back
        Assert.False(File.Exists(ObjectPathOf(obj)));

        using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct);
        Assert.Equal(1, obj.Fetches);
        var bytes = new byte[MiB];
        lease.Read(0, bytes);
        Assert.Equal(obj.Expected(0, MiB), bytes);
    }

    [Fact]
    public async Task GetOrFetch_ThreeTimesQuota_UsedSettlesUnderQuotaAndReadsStayCorrect()
    {
        const long quota = 8 * MiB;
        using var cache = new ChunkCache(Options(quota: quota));
        var obj = new TestObject("bigger-than-cache", 3 * quota);

        long maxUsed = 0;
        for (long index = 0; index < cache.GetChunkCount(obj.Size); index++)
        {
            using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(index), MiB, obj.FetchChunk(index, MiB), Ct);
            maxUsed = Math.Max(maxUsed, cache.GetStats().UsedBytes);
        }
        // A put that would pass the quota evicts inline first, so used never went over it.
        Assert.True(maxUsed <= quota, $"used peaked at {maxUsed}");
        Assert.True(await Wait.UntilAsync(() => cache.GetStats().UsedBytes <= quota * 0.95));
        cache.Trim(); // waits out a background pass still deleting files
        CacheStats stats = cache.GetStats();
        Assert.True(stats.Evictions >= 16, $"evicted {stats.Evictions}");
        Assert.False(stats.OverQuota);
        // One object, one file: there while any of its chunks is indexed.
        Assert.Equal(stats.ChunkCount > 0 ? 1 : 0, ObjectFilesOnDisk());

        // Every byte still reads right: evicted chunks are simply fetched again.
        long before = obj.Fetches;
        byte[] all = await obj.ReadAsync(cache, 0, (int)obj.Size);
        Assert.Equal(obj.Expected(0, (int)obj.Size), all);
        Assert.True(obj.Fetches > before, "some chunks had to be refetched");
        Assert.True(await Wait.UntilAsync(() => cache.GetStats().UsedBytes <= quota));
    }

    [Fact]
    public async Task Eviction_LeasedChunk_IsNeverEvicted()
    {
        const long quota = 4 * MiB;
        using var cache = new ChunkCache(Options(quota: quota));
        var pinned = new TestObject("pinned", MiB, seed: 1);
        var churn = new TestObject("churn", 32 * MiB, seed: 2);

        using ChunkLease held = await cache.GetOrFetchAsync(pinned.Chunk(0), MiB, pinned.FetchChunk(0, MiB), Ct);
        for (long i = 0; i < 32; i++)
        {
            using ChunkLease lease = await cache.GetOrFetchAsync(churn.Chunk(i), MiB, churn.FetchChunk(i, MiB), Ct);
        }
        cache.Trim();

        Assert.True(cache.Contains(pinned.Chunk(0)));
        Assert.True(File.Exists(held.FilePath));
        Assert.True(cache.GetStats().PinnedSkips > 0);
        var bytes = new byte[MiB];
        Assert.Equal(MiB, held.Read(0, bytes));
        Assert.Equal(pinned.Expected(0, MiB), bytes);
        Assert.Equal(1, pinned.Fetches);
    }

    [Fact]
    public async Task Eviction_EverythingLeased_GoesOverQuotaAndReportsIt()
    {
        const long quota = 2 * MiB;
        using var cache = new ChunkCache(Options(quota: quota));
        var obj = new TestObject("all-pinned", 4 * MiB);
        var leases = new List<ChunkLease>();
        for (long i = 0; i < 4; i++)
        {
            leases.Add(await cache.GetOrFetchAsync(obj.Chunk(i), MiB, obj.FetchChunk(i, MiB), Ct));
        }
        cache.Trim();
        Assert.True(cache.GetStats().OverQuota);
        Assert.Equal(4 * MiB, cache.GetStats().UsedBytes);

        leases.ForEach(l => l.Dispose());
        cache.Trim();
        Assert.False(cache.GetStats().OverQuota);
        Assert.True(cache.GetStats().UsedBytes <= quota * 0.85);
    }

    [Fact]
    public async Task Eviction_RecentlyReadObject_SurvivesOlderOnesGo()
    {
        // Quota of 10 chunks: the 10th put crosses the high watermark (95%) and eviction goes to 85%.
        using var cache = new ChunkCache(Options(quota: 10 * MiB));
        TestObject[] objects = Enumerable.Range(0, 10).Select(i => new TestObject($"lru/{i}", MiB, seed: i)).ToArray();
        for (int i = 0; i < 9; i++)
        {
            using ChunkLease lease = await cache.GetOrFetchAsync(objects[i].Chunk(0), MiB, objects[i].FetchChunk(0, MiB), Ct);
        }
        // Object 0 is the oldest put but now the most recently read.
        Assert.True(cache.TryRead(objects[0].Chunk(0), 0, new byte[10], out int read));
        Assert.Equal(10, read);

        using (ChunkLease lease = await cache.GetOrFetchAsync(objects[9].Chunk(0), MiB, objects[9].FetchChunk(0, MiB), Ct))
        {
        }
        cache.Trim();

        Assert.True(await Wait.UntilAsync(() => cache.GetStats().UsedBytes <= 8.5 * MiB));
        Assert.True(cache.Contains(objects[0].Chunk(0)), "recently read object 0 survived");
        Assert.False(cache.Contains(objects[1].Chunk(0)), "object 1, least recently used, went first");
        Assert.False(cache.Contains(objects[2].Chunk(0)));
        Assert.True(cache.Contains(objects[9].Chunk(0)));
    }

    [Fact]
    public async Task Restart_SameRoot_PreviouslyCachedChunksAreHitsWithoutFetch()
    {
        var obj = new TestObject("persist", (3 * MiB) + 11);
        using (var cache = new ChunkCache(Options(flush: true)))
        {
            Assert.Equal(obj.Expected(0, (int)obj.Size), await obj.ReadAsync(cache, 0, (int)obj.Size));
        }
        Assert.Equal(4, obj.Fetches);

        using var reopened = new ChunkCache(Options(flush: true));
        Assert.Equal(4, reopened.LoadedAtStart);
        Assert.Equal(obj.Size, reopened.GetStats().UsedBytes);
        byte[] again = await obj.ReadAsync(reopened, 0, (int)obj.Size);
        Assert.Equal(obj.Expected(0, (int)obj.Size), again);
        Assert.Equal(4, obj.Fetches);
        Assert.Equal(0, reopened.GetStats().Fetches);
        Assert.True(reopened.GetStats().Hits >= 4);
    }

    [Fact]
    public async Task DirectWrite_LargeChunks_BypassThePageCache_ExactLengthsAndBytes_FromMemoryAndFromFile()
    {
        // /var/tmp, not /tmp: O_DIRECT needs a disk file system (tmpfs may refuse it).
        using var dir = new TempDirectory("/var/tmp");
        var options = Options(chunkSize: 2 * MiB) with { RootDirectory = dir.Path, DirectWriteMinBytes = MiB };
        using var cache = new ChunkCache(options);
        var obj = new TestObject("direct", (4 * MiB) + 100);
        var odd = new TestObject("odd", (2 * MiB) + (MiB + (MiB / 2) + 3));

        foreach (TestObject o in new[] { obj, odd })
        {
            for (long i = 0; i < cache.GetChunkCount(o.Size); i++)
            {
                int length = cache.GetChunkLength(o.Size, i);
                using ChunkLease lease = await cache.GetOrFetchAsync(o.Chunk(i), length, o.FetchChunk(i, 2 * MiB), Ct);
                Assert.NotNull(lease.FilePath); // stored and pinned like any chunk
                var fromLease = new byte[length];
                Assert.Equal(length, lease.Read(0, fromLease));
                Assert.Equal(o.Expected(i * 2 * MiB, length), fromLease);
                // In place in the object's file, which ends where the chunk does (padding cut off).
                Assert.Equal(i * 2 * MiB, lease.FileOffset);
                Assert.Equal(lease.FileOffset + length, new FileInfo(lease.FilePath!).Length);
                using (SafeFileHandle raw = File.OpenHandle(lease.FilePath!))
                {
                    var onDisk = new byte[length];
                    Assert.Equal(length, RandomAccess.Read(raw, onDisk, lease.FileOffset));
                    Assert.Equal(o.Expected(i * 2 * MiB, length), onDisk);
                }

                var fromFile = new byte[length];
                Assert.True(cache.TryRead(o.Chunk(i), 0, fromFile, out int n));
                Assert.Equal(length, n);
                Assert.Equal(o.Expected(i * 2 * MiB, length), fromFile);
            }
        }
        // obj: 2 MiB, 2 MiB, 100 B; odd: 2 MiB, 1.5 MiB + 3. Every chunk of 1 MiB or more went direct.
        Assert.Equal(4, cache.GetStats().DirectWrites);
    }

    [Fact]
    public async Task DirectWrite_FreshChunksStayInMemoryForTheNextReaders_UntilReadToTheirEnd_OrPushedOut()
    {
        using var dir = new TempDirectory("/var/tmp");
        var options = Options(chunkSize: MiB, memory: 64 * MiB) with { RootDirectory = dir.Path, DirectWriteMinBytes = MiB };
        using var cache = new ChunkCache(options);
        const int Recent = 8; // the 64 MiB budget / 1 MiB chunks / 8
        var obj = new TestObject("recent", (Recent + 4) * (long)MiB);
        string file;
        using (ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct))
        {
            file = lease.FilePath!;
        }
        Assert.Equal(MiB, cache.Budget.InUseBytes); // kept after its flight's last lease

        // Overwritten behind the cache's back: reads that still see the chunk come from memory.
        using (SafeFileHandle raw = File.OpenHandle(file, FileMode.Open, FileAccess.Write))
        {
            RandomAccess.Write(raw, new byte[MiB], 0);
        }
        var half = new byte[MiB / 2];
        Assert.True(cache.TryRead(obj.Chunk(0), 0, half, out int n));
        Assert.Equal(obj.Expected(0, MiB / 2), half);
        Assert.Equal(MiB, cache.Budget.InUseBytes);
        Assert.True(cache.TryRead(obj.Chunk(0), MiB / 2, half, out n));
        Assert.Equal(obj.Expected(MiB / 2, MiB / 2), half);

        // Read to its end: the buffer went back, and the next read is the (overwritten) file's.
        Assert.Equal(0, cache.Budget.InUseBytes);
        Assert.True(cache.TryRead(obj.Chunk(0), 0, half, out n));
        Assert.Equal(new byte[MiB / 2], half);

        // More fresh chunks than the FIFO holds, none read: only the newest stay in memory.
        for (long i = 1; i <= Recent + 3; i++)
        {
            using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(i), MiB, obj.FetchChunk(i, MiB), Ct);
        }
        Assert.Equal(Recent * (long)MiB, cache.Budget.InUseBytes);
        var whole = new byte[MiB];
        for (long i = 1; i <= Recent + 3; i++)
        {
            // The oldest three from their file, the rest from memory: the same bytes either way.
            Assert.True(cache.TryRead(obj.Chunk(i), 0, whole, out n));
            Assert.Equal(MiB, n);
            Assert.Equal(obj.Expected(i * MiB, MiB), whole);
        }
        Assert.Equal(0, cache.Budget.InUseBytes); // each one in memory was read to its end
        Assert.Equal(Recent + 4, cache.GetStats().DirectWrites);
    }

    [Fact]
    public async Task Crash_ChunksWrittenAfterTheLastSync_AreDiscardedAtRestart_SyncedOnesKept()
    {
        // An hour between automatic syncs: only the explicit Sync() below makes anything durable.
        var synced = new TestObject("synced", (2 * MiB) + 5);
        var unsynced = new TestObject("unsynced", (3 * MiB) + 1);
        var crashed = new ChunkCache(Options(flush: true, syncInterval: TimeSpan.FromHours(1)));
        await synced.ReadAsync(crashed, 0, (int)synced.Size);
        crashed.Sync();
        Assert.Equal(1, crashed.SyncCheckpoints);
        await Task.Delay(20, Ct); // a clock tick apart from the checkpoint
        await unsynced.ReadAsync(crashed, 0, (int)unsynced.Size);
        crashed.AbandonAsIfCrashed();

        using var reopened = new ChunkCache(Options(flush: true, syncInterval: TimeSpan.FromHours(1)));
        Assert.Equal(3, reopened.LoadedAtStart);
        Assert.Equal(4, reopened.DiscardedUnsyncedAtStart);
        Assert.False(File.Exists(ObjectPathOf(unsynced)), "the unsynced object's file was deleted");
        Assert.True(File.Exists(ObjectPathOf(synced)));
        Assert.Equal(synced.Expected(0, (int)synced.Size), await synced.ReadAsync(reopened, 0, (int)synced.Size));
        Assert.Equal(3, synced.Fetches); // served from disk, not fetched again
        Assert.Equal(unsynced.Expected(0, (int)unsynced.Size), await unsynced.ReadAsync(reopened, 0, (int)unsynced.Size));
        Assert.Equal(8, unsynced.Fetches); // fetched again after the crash
    }

    [Fact]
    public async Task Crash_AfterThePeriodicSync_KeepsEverything()
    {
        var obj = new TestObject("periodic", (2 * MiB) + 9);
        var crashed = new ChunkCache(Options(flush: true, syncInterval: TimeSpan.FromMilliseconds(50)));
        await obj.ReadAsync(crashed, 0, (int)obj.Size);
        // The first background sync may come between two chunks; wait until one covers them all.
        Assert.True(await Wait.UntilAsync(() => crashed.SyncCheckpoints >= 1 && crashed.AllSynced), "the background sync covered every chunk");
        crashed.AbandonAsIfCrashed();

        using var reopened = new ChunkCache(Options(flush: true));
        Assert.Equal(3, reopened.LoadedAtStart);
        Assert.Equal(0, reopened.DiscardedUnsyncedAtStart);
        Assert.Equal(obj.Expected(0, (int)obj.Size), await obj.ReadAsync(reopened, 0, (int)obj.Size));
        Assert.Equal(3, obj.Fetches);
    }

    [Fact]
    public async Task Crash_RightAfterStart_WithNothingSynced_DiscardsEverythingWrittenAndStartsClean()
    {
        // A clean stop first, then a crash before any sync: the "clean" marker of the first run
        // must not vouch for the second run's files.
        var first = new TestObject("first", MiB);
        using (var cache = new ChunkCache(Options(flush: true)))
        {
            await first.ReadAsync(cache, 0, MiB);
        }
        // The new owner's marker sits a clock slack (20 ms) before its start: "first" must be older.
        await Task.Delay(50, Ct);
        var second = new TestObject("second", MiB + 1);
        var crashed = new ChunkCache(Options(flush: true, syncInterval: TimeSpan.FromHours(1)));
        await Task.Delay(20, Ct);
        await second.ReadAsync(crashed, 0, (int)second.Size);
        crashed.AbandonAsIfCrashed();

        using var reopened = new ChunkCache(Options(flush: true));
        Assert.Equal(1, reopened.LoadedAtStart);
        Assert.Equal(2, reopened.DiscardedUnsyncedAtStart);
        Assert.True(reopened.Contains(first.Chunk(0)));
        Assert.False(reopened.Contains(second.Chunk(0)));
    }

    private string ObjectPathOf(TestObject obj) =>
        Path.Combine(_dir.Path, "v2", obj.Key.Hash[..2], obj.Key.Hash);

    private long ObjectFilesOnDisk() =>
        Directory.EnumerateFiles(Path.Combine(_dir.Path, "v2"), "*", SearchOption.AllDirectories).LongCount();

    [Fact]
    public async Task Restart_StrayAndOldFormatFiles_AreDeleted_ObjectFileKept()
    {
        var obj = new TestObject("stray", 2 * MiB);
        using (var cache = new ChunkCache(Options()))
        {
            using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct);
        }
        string folder = Path.GetDirectoryName(ObjectPathOf(obj))!;
        string stray = Path.Combine(folder, "not-a-chunk");
        await File.WriteAllBytesAsync(stray, new byte[10], Ct);
        // What the per-chunk layout of format 1 left: a chunk file and a temp file.
        string oldFolder = Path.Combine(_dir.Path, "v1", obj.Key.Hash[..2]);
        Directory.CreateDirectory(oldFolder);
        await File.WriteAllBytesAsync(Path.Combine(oldFolder, $"{obj.Key.Hash}-1"), new byte[MiB], Ct);
        await File.WriteAllBytesAsync(Path.Combine(oldFolder, $"{obj.Key.Hash}-1.1234abcd.tmp"), new byte[1000], Ct);

        using var reopened = new ChunkCache(Options());
        Assert.False(File.Exists(stray));
        Assert.False(Directory.Exists(Path.Combine(_dir.Path, "v1")));
        Assert.Equal(1, reopened.DeletedAtStart);
        Assert.True(reopened.Contains(obj.Chunk(0)));
        Assert.False(reopened.Contains(obj.Chunk(1)));
        Assert.Equal(MiB, reopened.GetStats().UsedBytes);
    }

    [Fact]
    public async Task Restart_SparseObjectFile_ChunksComeBackFromItsDataExtents()
    {
        // Chunks 0, 2 and 5 of 6 (the last one short): the file has holes where 1, 3 and 4 would go.
        var obj = new TestObject("sparse", (5 * MiB) + 777);
        long[] stored = [0, 2, 5];
        using (var cache = new ChunkCache(Options()))
        {
            foreach (long index in stored)
            {
                int length = cache.GetChunkLength(obj.Size, index);
                using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(index), length, obj.FetchChunk(index, MiB), Ct);
            }
            Assert.False(cache.TryOpenWholeObject(obj.Key, obj.Size, out _));
        }
        Assert.Equal(obj.Size, new FileInfo(ObjectPathOf(obj)).Length);

        using var reopened = new ChunkCache(Options());
        Assert.Equal(3, reopened.LoadedAtStart);
        for (long index = 0; index < 6; index++)
        {
            Assert.Equal(stored.Contains(index), reopened.Contains(obj.Chunk(index)));
        }
        Assert.Equal((2 * MiB) + 777, reopened.GetStats().UsedBytes);
        Assert.Equal(obj.Expected(0, (int)obj.Size), await obj.ReadAsync(reopened, 0, (int)obj.Size));
        Assert.Equal(6, obj.Fetches); // 3 before, and only the 3 holes after
        Assert.True(reopened.TryOpenWholeObject(obj.Key, obj.Size, out SafeFileHandle? whole));
        using (whole)
        {
            var bytes = new byte[obj.Size];
            Assert.Equal(obj.Size, RandomAccess.Read(whole, bytes, 0));
            Assert.Equal(obj.Expected(0, (int)obj.Size), bytes);
        }
    }

    [Fact]
    public async Task Restart_AccessOrderPersistsThroughFileTimes()
    {
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        TestObject[] objects = Enumerable.Range(0, 5).Select(i => new TestObject($"lru-restart/{i}", MiB, seed: i)).ToArray();
        ChunkCacheOptions options = Options(quota: 6 * MiB) with { AccessTimeResolution = TimeSpan.FromMinutes(1) };
        using (var cache = new ChunkCache(options, clock))
        {
            foreach (TestObject obj in objects)
            {
                clock.Advance(TimeSpan.FromMinutes(5));
                using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct);
            }
            clock.Advance(TimeSpan.FromMinutes(5));
            Assert.True(cache.TryRead(objects[0].Chunk(0), 0, new byte[1], out _)); // object 0 becomes the newest
        }

        // Reopen with a smaller quota: the start-up trim must keep the recently read object 0.
        using var reopened = new ChunkCache(options with { QuotaBytes = 3 * MiB }, clock);
        Assert.True(await Wait.UntilAsync(() => reopened.GetStats().UsedBytes <= 3 * MiB * 0.85));
        Assert.True(reopened.Contains(objects[0].Chunk(0)));
        Assert.True(reopened.Contains(objects[4].Chunk(0)));
        Assert.False(reopened.Contains(objects[1].Chunk(0)));
        Assert.False(reopened.Contains(objects[2].Chunk(0)));
    }

    [Fact]
    public async Task Restart_OtherChunkSize_WipesTheStoreInsteadOfMisreadingIt()
    {
        var obj = new TestObject("resize", 4 * MiB);
        using (var cache = new ChunkCache(Options(chunkSize: 2 * MiB)))
        {
            await obj.ReadAsync(cache, 0, (int)obj.Size);
        }
        using var reopened = new ChunkCache(Options(chunkSize: MiB));
        Assert.Equal(0, reopened.LoadedAtStart);
        Assert.Equal(obj.Expected(3 * MiB, 100), await obj.ReadAsync(reopened, 3 * MiB, 100));
    }

    [Fact]
    public void Open_SecondCacheOnSameRoot_IsRefused()
    {
        using var cache = new ChunkCache(Options());
        Assert.Throws<IOException>(() => new ChunkCache(Options()));
    }

    [Fact]
    public async Task Budget_64ConcurrentFetchesOf1MiB_NeverMoreThanLimitInFlightAndAllComplete()
    {
        const long limit = 8 * MiB;
        // No fresh chunks kept in memory: this is about fetch buffers in flight, all returned at the end.
        using var cache = new ChunkCache(Options(memory: limit) with { RecentChunks = 0 });
        long inFlight = 0;
        long maxInFlight = 0;
        var objects = Enumerable.Range(0, 64).Select(i => new TestObject($"f{i}", MiB, seed: i)).ToArray();

        async ValueTask Fetch(TestObject obj, Memory<byte> buffer, CancellationToken ct)
        {
            long now = Interlocked.Add(ref inFlight, buffer.Length);
            long seen;
            while ((seen = Interlocked.Read(ref maxInFlight)) < now && Interlocked.CompareExchange(ref maxInFlight, now, seen) != seen)
            {
            }
            await Task.Delay(5, ct); // a slow origin, so fetches pile up on the budget
            obj.Fill(0, buffer.Span);
            Interlocked.Add(ref inFlight, -buffer.Length);
        }

        var tasks = objects.Select(obj => Task.Run(async () =>
        {
            using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj, Fetch, Ct);
            var first = new byte[64];
            lease.Read(0, first);
            return first.SequenceEqual(obj.Expected(0, 64));
        }, Ct)).ToArray();
        bool[] ok = await Task.WhenAll(tasks);

        Assert.All(ok, Assert.True);
        Assert.True(maxInFlight <= limit, $"{maxInFlight} bytes in flight");
        Assert.True(maxInFlight > MiB, "fetches did run concurrently");
        Assert.True(cache.Budget.PeakBytes <= limit);
        Assert.Equal(0, cache.Budget.InUseBytes);
        Assert.Equal(64, cache.GetStats().Fetches);
    }

    [Fact]
    public async Task Keys_DifferentVersionsOfOnePath_NeverShareChunks()
    {
        using var cache = new ChunkCache(Options());
        var v1 = new TestObject("same/path", MiB, version: "etag-1", seed: 1);
        var v2 = new TestObject("same/path", MiB, version: "etag-2", seed: 2);
        Assert.NotEqual(v1.Key, v2.Key);

        Assert.Equal(v1.Expected(0, 1000), await v1.ReadAsync(cache, 0, 1000));
        Assert.Equal(v2.Expected(0, 1000), await v2.ReadAsync(cache, 0, 1000));
        Assert.Equal(1, v1.Fetches);
        Assert.Equal(1, v2.Fetches);
        Assert.NotEqual(v1.Expected(0, 1000), v2.Expected(0, 1000));
        Assert.Equal(2, cache.GetStats().ChunkCount);
    }

    [Fact]
    public async Task GetOrFetch_OneWaiterCancels_OthersStillGetTheChunk()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("cancel-one", MiB);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        CancellationToken fetchToken = default;

        async ValueTask Fetch(Memory<byte> buffer, CancellationToken ct)
        {
            fetchToken = ct;
            await release.Task;
            obj.Fill(0, buffer.Span);
        }

        using var impatient = new CancellationTokenSource();
        ValueTask<ChunkLease> first = cache.GetOrFetchAsync(obj.Chunk(0), MiB, Fetch, impatient.Token);
        ValueTask<ChunkLease> second = cache.GetOrFetchAsync(obj.Chunk(0), MiB, Fetch, Ct);
        await impatient.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await first);
        Assert.False(fetchToken.IsCancellationRequested);

        release.SetResult();
        using ChunkLease lease = await second;
        var bytes = new byte[16];
        lease.Read(0, bytes);
        Assert.Equal(obj.Expected(0, 16), bytes);
    }

    [Fact]
    public async Task GetOrFetch_AllWaitersCancel_FetchIsCancelledAndNothingLeaks()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("cancel-all", MiB);
        var fetchCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        async ValueTask Hang(Memory<byte> buffer, CancellationToken ct)
        {
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            finally
            {
                fetchCancelled.TrySetResult();
            }
        }

        using var cts = new CancellationTokenSource();
        ValueTask<ChunkLease> a = cache.GetOrFetchAsync(obj.Chunk(0), MiB, Hang, cts.Token);
        ValueTask<ChunkLease> b = cache.GetOrFetchAsync(obj.Chunk(0), MiB, Hang, cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await a);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await b);
        await fetchCancelled.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.True(await Wait.UntilAsync(() => cache.Budget.InUseBytes == 0 && cache.GetStats().InFlightFetches == 0));

        // The key is free again: a new caller fetches afresh.
        using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct);
        Assert.Equal(1, obj.Fetches);
    }

    [Fact]
    public async Task GetOrFetch_ChunkCannotBeWritten_ServedFromMemoryAndNotCached()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("disk-trouble", MiB);
        // Make the object's fan-out folder a plain file: creating its file fails (ENOTDIR),
        // which stands in for ENOSPC or a failing disk (root ignores permission bits).
        string fanOut = Path.Combine(_dir.Path, "v2", obj.Key.Hash[..2]);
        await File.WriteAllBytesAsync(fanOut, [], Ct);

        using (ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct))
        {
            Assert.Null(lease.FilePath);
            var bytes = new byte[MiB];
            Assert.Equal(MiB, lease.Read(0, bytes));
            Assert.Equal(obj.Expected(0, MiB), bytes);
            Assert.True(cache.Budget.InUseBytes > 0); // the buffer lives as long as the lease
        }
        Assert.Equal(0, cache.Budget.InUseBytes);
        Assert.False(cache.Contains(obj.Chunk(0)));
        Assert.Equal(1, cache.GetStats().WriteFailures);
    }

    [Fact]
    public async Task TryRead_FileRemovedBehindTheCachesBack_IsAMissThenRefetched()
    {
        // No idle fds: an open one would keep serving the unlinked inode (harmless, but not this case).
        using var cache = new ChunkCache(Options() with { MaxIdleOpenFiles = 0 });
        var obj = new TestObject("vanishing", MiB);
        string path;
        using (ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct))
        {
            path = lease.FilePath!;
        }
        File.Delete(path);

        Assert.False(cache.TryRead(obj.Chunk(0), 0, new byte[10], out _));
        Assert.False(cache.Contains(obj.Chunk(0)));
        Assert.Equal(0, cache.GetStats().UsedBytes);
        Assert.Equal(obj.Expected(0, 10), await obj.ReadAsync(cache, 0, 10));
        Assert.Equal(2, obj.Fetches);
    }

    [Fact]
    public async Task GetOrFetch_StoredChunkOfOtherLength_IsRefetchedAndReplaced()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("odd-length", MiB);
        using (ChunkLease stale = await cache.GetOrFetchAsync(obj.Chunk(0), 100, obj.FetchChunk(0, MiB), Ct))
        {
            Assert.Equal(100, stale.Length);
        }
        using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct);
        Assert.Equal(MiB, lease.Length);
        Assert.Equal(2, obj.Fetches);
        Assert.Equal(MiB, cache.GetStats().UsedBytes);
        Assert.Equal(MiB, new FileInfo(lease.FilePath!).Length);
    }

    [Fact]
    public async Task WholeObject_OnlyWhenEveryChunkIsStored_OneHeaderlessFileWithExactlyItsBytes()
    {
        using var cache = new ChunkCache(Options());
        var small = new TestObject("small.txt", 5000);
        var large = new TestObject("large.bin", (2 * MiB) + 1);
        Assert.False(cache.TryOpenWholeObject(small.Key, small.Size, out _));

        await small.ReadAsync(cache, 0, 10);
        await large.ReadAsync(cache, 0, MiB + 10); // chunks 0 and 1 of 3
        Assert.False(cache.TryOpenWholeObject(large.Key, large.Size, out _));
        Assert.False(cache.TryOpenWholeObject(small.Key, small.Size + 1, out _)); // another version's size
        await large.ReadAsync(cache, large.Size - 1, 1);

        foreach (TestObject obj in new[] { small, large })
        {
            Assert.True(cache.TryOpenWholeObject(obj.Key, obj.Size, out SafeFileHandle? file));
            using (file)
            {
                Assert.Equal(obj.Size, RandomAccess.GetLength(file));
                var bytes = new byte[obj.Size];
                Assert.Equal(obj.Size, RandomAccess.Read(file, bytes, 0));
                Assert.Equal(obj.Expected(0, (int)obj.Size), bytes);
            }
        }
        Assert.Equal(4, small.Fetches + large.Fetches);
    }

    [Fact]
    public async Task Eviction_PunchesOldChunksOutOfTheirObjectFile_AndARestartFindsExactlyTheRest()
    {
        // Quota 4 MiB (evict from 3.8 down to 3.4): a 6-chunk object read in order keeps its newest chunks.
        ChunkCacheOptions options = Options(quota: 4 * MiB);
        var obj = new TestObject("punched", 6 * MiB);
        long[] kept;
        using (var cache = new ChunkCache(options))
        {
            Assert.Equal(obj.Expected(0, (int)obj.Size), await obj.ReadAsync(cache, 0, (int)obj.Size));
            cache.Trim();
            kept = Enumerable.Range(0, 6).Select(i => (long)i).Where(i => cache.Contains(obj.Chunk(i))).ToArray();
            Assert.False(cache.Contains(obj.Chunk(0)));
            Assert.True(cache.Contains(obj.Chunk(5)));
            Assert.Equal(kept.Length * MiB, cache.GetStats().UsedBytes);

            // The evicted ranges are holes now: the first data in the file is the first kept chunk.
            using SafeFileHandle file = File.OpenHandle(ObjectPathOf(obj));
            Assert.Equal(kept[0] * MiB, CacheNative.NextData(file, 0));
        }

        using var reopened = new ChunkCache(options);
        Assert.Equal(kept.Length, reopened.LoadedAtStart);
        for (long index = 0; index < 6; index++)
        {
            Assert.Equal(kept.Contains(index), reopened.Contains(obj.Chunk(index)));
        }
        long fetched = obj.Fetches;
        Assert.Equal(obj.Expected(kept[0] * MiB, MiB), await obj.ReadAsync(reopened, kept[0] * MiB, MiB));
        Assert.Equal(fetched, obj.Fetches);
    }

    [Fact]
    public async Task Eviction_AnObjectOpenedWhole_GoesWhole_AndTheOpenFileKeepsItsBytes()
    {
        using var cache = new ChunkCache(Options(quota: 6 * MiB));
        var old = new TestObject("old", 3 * MiB, seed: 1);
        var recent = new TestObject("recent", 2 * MiB, seed: 2);
        var next = new TestObject("next", 2 * MiB, seed: 3);
        await old.ReadAsync(cache, 0, (int)old.Size);
        await recent.ReadAsync(cache, 0, (int)recent.Size);
        Assert.True(cache.TryOpenWholeObject(old.Key, old.Size, out SafeFileHandle? held));
        using (held)
        {
            // The open counts as a use of every chunk of "old": "recent" is now the least recently used.
            await next.ReadAsync(cache, 0, (int)next.Size); // 7 MiB > quota
            cache.Trim();
            Assert.False(cache.Contains(recent.Chunk(0)));
            Assert.False(cache.Contains(recent.Chunk(1)));
            Assert.False(File.Exists(ObjectPathOf(recent))); // its last chunk took the file with it
            Assert.True(cache.Contains(old.Chunk(0)));

            // Now "old" is the least recently used: opened whole, it goes whole, by unlink, and the
            // file still open (as a passthrough backing file would be) keeps every byte.
            await recent.ReadAsync(cache, 0, (int)recent.Size);
            cache.Trim();
            Assert.False(File.Exists(ObjectPathOf(old)));
            Assert.False(cache.Contains(old.Chunk(2)));
            var bytes = new byte[old.Size];
            Assert.Equal(old.Size, RandomAccess.Read(held, bytes, 0));
            Assert.Equal(old.Expected(0, (int)old.Size), bytes);
        }
        CacheStats stats = cache.GetStats();
        Assert.Equal(4 * MiB, stats.UsedBytes);
        Assert.Equal(4, stats.ChunkCount);
        Assert.Equal(2, ObjectFilesOnDisk());
    }

    [Fact]
    public async Task TryGetCached_HitAndMiss_CountedAndNeverFetch()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("peek", MiB);
        Assert.False(cache.TryGetCached(obj.Chunk(0), out _));
        await obj.ReadAsync(cache, 0, 1);
        Assert.True(cache.TryGetCached(obj.Chunk(0), out ChunkLease? lease));
        using (lease)
        {
            Assert.Equal(MiB, lease.Length);
        }
        Assert.Throws<ObjectDisposedException>(() => lease.Read(0, new byte[1]));
        Assert.Equal(1, obj.Fetches);
        Assert.Equal(1, cache.GetStats().Misses); // ReadAsync's; a TryGetCached miss is left to the follow-up fetch
        Assert.Equal(1, cache.GetStats().Hits);
    }

    [Fact]
    public async Task Rebuild_ManyObjectFiles_IndexMatchesFiles()
    {
        const int files = 1000;
        var objects = Enumerable.Range(0, files).Select(i => new TestObject($"many/{i}", 10 + (i % 7))).ToArray();
        // Lay the files down directly: what matters is the scan.
        using (var cache = new ChunkCache(Options()))
        {
        }
        foreach (TestObject obj in objects)
        {
            string path = ObjectPathOf(obj);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await File.WriteAllBytesAsync(path, obj.Expected(0, (int)obj.Size), Ct);
        }
        long expectedBytes = objects.Sum(o => o.Size);

        var watch = System.Diagnostics.Stopwatch.StartNew();
        using var reopened = new ChunkCache(Options());
        watch.Stop();
        TestContext.Current.SendDiagnosticMessage($"rebuilt {files} objects in {watch.ElapsedMilliseconds} ms");

        Assert.Equal(files, reopened.LoadedAtStart);
        Assert.Equal(expectedBytes, reopened.GetStats().UsedBytes);
        Assert.True(reopened.Contains(objects[^1].Chunk(0)));
        Assert.Equal(objects[^1].Expected(0, 3), await objects[^1].ReadAsync(reopened, 0, 3));
        Assert.Equal(0, objects[^1].Fetches);
    }

    [Fact]
    public void Options_Invalid_AreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ChunkCache(Options(chunkSize: 4096)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ChunkCache(Options(chunkSize: 8 * MiB)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ChunkCache(Options(quota: 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ChunkCache(Options() with { LowWatermark = 0.99 }));
    }

    [Fact]
    public async Task GetOrFetch_BadArguments_AreRejectedBeforeFetching()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("args", MiB);
        await Assert.ThrowsAsync<ArgumentException>(async () => await cache.GetOrFetchAsync(new ChunkKey(default, 0), 1, obj.FetchChunk(0, MiB), Ct));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await cache.GetOrFetchAsync(obj.Chunk(0), MiB + 1, obj.FetchChunk(0, MiB), Ct));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await cache.GetOrFetchAsync(obj.Chunk(-1), 1, obj.FetchChunk(0, MiB), Ct));
        Assert.Equal(0, obj.Fetches);
    }

    [Fact]
    public async Task IdleChunks_KeepAtMostMaxIdleOpenFilesDescriptors()
    {
        using var cache = new ChunkCache(Options() with { MaxIdleOpenFiles = 10 });
        var obj = new TestObject("fds", 40 * MiB);
        for (long i = 0; i < 40; i++)
        {
            using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(i), MiB, obj.FetchChunk(i, MiB), Ct);
        }
        for (long i = 0; i < 40; i++)
        {
            Assert.True(cache.TryRead(obj.Chunk(i), 5, new byte[3], out int read));
            Assert.Equal(3, read);
        }
        Assert.InRange(OpenFilesUnder(_dir.Path + "/v2/"), 1, 10);

        cache.Dispose();
        Assert.Equal(0, OpenFilesUnder(_dir.Path + "/v2/"));
    }

    [Theory]
    [InlineData(16384, 20000L, 9488)] // half of what the limit leaves after 1,024 others
    [InlineData(16384, 1048576L, 16384)] // a container's usual limit: the option itself
    [InlineData(16384, 1024L, 64)] // a limit with no room left: a floor, not zero
    [InlineData(10, 20000L, 10)]
    [InlineData(500, null, 500)] // limit unknown: the option
    public void IdleHandleBound_LeavesRoomUnderTheFdLimit(int configured, long? limit, int expected) =>
        Assert.Equal(expected, ChunkCache.IdleHandleBound(configured, limit));

    [Fact]
    public async Task IdleChunks_ReopenAfterTheirFdsClosed_AndAnEvictedFileIsAMissNotAnError()
    {
        using var cache = new ChunkCache(Options() with { MaxIdleOpenFiles = 0 });
        var obj = new TestObject("reopen", 2 * MiB);
        using (await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct))
        {
        }
        Assert.Equal(0, OpenFilesUnder(_dir.Path + "/v2/"));

        // Reopened by a plain open(2): the bytes are the chunk's.
        var read = new byte[4];
        Assert.True(cache.TryRead(obj.Chunk(0), 100, read, out int n));
        Assert.Equal(4, n);
        Assert.Equal(obj.Expected(100, 4), read);

        // The file removed behind the cache: a miss (and a refetch), not an exception.
        foreach (string file in Directory.EnumerateFiles(_dir.Path + "/v2", "*", SearchOption.AllDirectories))
        {
            File.Delete(file);
        }
        Assert.False(cache.TryRead(obj.Chunk(0), 0, read, out _));
        using ChunkLease again = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct);
        Assert.Equal(2, obj.Fetches);
    }

    private static int OpenFilesUnder(string prefix) =>
        new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos()
            .Select(fd =>
            {
                try
                {
                    return fd.LinkTarget;
                }
                catch (IOException)
                {
                    return null; // closed while we looked
                }
            })
            .Count(target => target is not null && target.StartsWith(prefix, StringComparison.Ordinal));

    [Fact]
    public async Task Stress_ConcurrentRandomReadsUnderEvictionPressure_AlwaysCorrectAndSettleUnderQuota()
    {
        const long quota = 6 * MiB;
        using var cache = new ChunkCache(Options(quota: quota, memory: 4 * MiB));
        var objects = Enumerable.Range(0, 3).Select(i => new TestObject($"stress/{i}", (8 * MiB) - (i * 1000), seed: i)).ToArray();

        await Parallel.ForAsync(0, 6, Ct, async (worker, ct) =>
        {
            var random = new Random(worker);
            for (int i = 0; i < 80; i++)
            {
                TestObject obj = objects[random.Next(objects.Length)];
                long offset = random.NextInt64(obj.Size);
                int count = (int)Math.Min(obj.Size - offset, random.Next(1, 64 * 1024));
                byte[] actual = await obj.ReadAsync(cache, offset, count);
                Assert.Equal(obj.Expected(offset, count), actual);
            }
        });

        cache.Trim();
        CacheStats stats = cache.GetStats();
        Assert.True(stats.UsedBytes <= quota, $"used {stats.UsedBytes}");
        Assert.True(stats.Evictions > 0);
        Assert.Equal(0, stats.InFlightFetches);
        Assert.Equal(0, cache.Budget.InUseBytes);
        Assert.True(cache.Budget.PeakBytes <= 4 * MiB);
        // A file per object that still has a chunk indexed, and no other.
        long objectsHeld = objects.LongCount(o => Enumerable.Range(0, (int)cache.GetChunkCount(o.Size)).Any(i => cache.Contains(o.Chunk(i))));
        Assert.Equal(objectsHeld, ObjectFilesOnDisk());
    }

    [Fact]
    public async Task GetOrFetch_ZeroLengthChunk_IsStoredAsAnEmptyFile()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("empty", 0);
        Assert.Equal(0, cache.GetChunkCount(0));
        using ChunkLease lease = await cache.GetOrFetchAsync(obj.Chunk(0), 0, obj.FetchChunk(0, MiB), Ct);
        Assert.Equal(0, lease.Length);
        Assert.Equal(0, lease.Read(0, new byte[10]));
        Assert.Equal(0, new FileInfo(lease.FilePath!).Length);
        Assert.Equal(0, cache.Budget.InUseBytes);
    }

    [Fact]
    public async Task Replace_WhileOldCopyIsLeased_BothLeasesReadRightBytesWithinTheirLengths()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("replaced", MiB);
        using ChunkLease stale = await cache.GetOrFetchAsync(obj.Chunk(0), 100, obj.FetchChunk(0, MiB), Ct);
        using ChunkLease fresh = await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct);

        var bytes = new byte[200];
        Assert.Equal(100, stale.Read(0, bytes));
        Assert.Equal(obj.Expected(0, 100), bytes[..100]);
        Assert.Equal(200, fresh.Read(0, bytes));
        Assert.Equal(obj.Expected(0, 200), bytes);
        Assert.Equal(MiB, cache.GetStats().UsedBytes); // the replaced copy no longer counts
    }

    [Fact]
    public async Task Dispose_WithFetchInFlight_WaitersEndAndLaterCallsAreRefused()
    {
        var cache = new ChunkCache(Options());
        var obj = new TestObject("shutdown", MiB);
        ValueTask<ChunkLease> waiting = cache.GetOrFetchAsync(obj.Chunk(0), MiB, async (buffer, ct) => await Task.Delay(Timeout.Infinite, ct), Ct);
        cache.Dispose();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await waiting.AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await cache.GetOrFetchAsync(obj.Chunk(0), MiB, obj.FetchChunk(0, MiB), Ct));
        Assert.Equal(0, cache.Budget.InUseBytes);

        // The root is free for the next instance.
        using var next = new ChunkCache(Options());
        Assert.Equal(0, next.LoadedAtStart);
    }

    [Theory]
    [InlineData(1L, 0L, 1)]
    [InlineData(MiB, 0L, MiB)]
    [InlineData(MiB + 1L, 1L, 1)]
    [InlineData(3L * MiB, 2L, MiB)]
    public void GetChunkLength_CoversTheObjectExactly(long size, long index, int expected)
    {
        using var cache = new ChunkCache(Options());
        Assert.Equal(expected, cache.GetChunkLength(size, index));
        long total = 0;
        for (long i = 0; i < cache.GetChunkCount(size); i++)
        {
            total += cache.GetChunkLength(size, i);
        }
        Assert.Equal(size, total);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.GetChunkLength(size, cache.GetChunkCount(size)));
    }

    [Fact]
    public async Task TryRead_Hit_AllocatesNothing()
    {
        using var cache = new ChunkCache(Options());
        var obj = new TestObject("no-alloc", MiB);
        await obj.ReadAsync(cache, 0, 1);
        var buffer = new byte[4096];
        for (int i = 0; i < 100; i++)
        {
            cache.TryRead(obj.Chunk(0), i * 4096, buffer, out _); // warm up
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        int reads = 0;
        for (int i = 0; i < 1000; i++)
        {
            if (cache.TryRead(obj.Chunk(0), (i % 256) * 4096, buffer, out int n) && n == 4096)
            {
                reads++;
            }
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(1000, reads);
        Assert.Equal(0, allocated);
        Assert.Equal(obj.Expected((999 % 256) * 4096, 4096), buffer); // the last read
    }
}
