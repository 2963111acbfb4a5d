using CsiCache.Fuse;

namespace CsiCache.Datasets.Tests;

/// <summary>Real FUSE mounts over a POSIX directory origin (file:///).</summary>
[Collection(MountCollection.Name)]
public sealed class PosixMountTests
{
    private const int ChunkSize = 4 << 20;

    /// <summary>Host options for tests that wait on background fetches, which must not time out on a loaded machine.</summary>
    private static readonly Func<TempDirectory, DatasetHostOptions> PatientOrigin =
        t => TestMount.HostOptions(t) with { OriginTimeout = TimeSpan.FromSeconds(30) };

    [Fact(Timeout = 90_000)]
    public async Task Mount_PosixDirectory_EveryByteAndListingMatchesAndSecondPassHitsCache()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Dictionary<string, byte[]> files = TestData.WriteDataset(source.Path, ChunkSize);
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path);

        Assert.True(test.Mount.IsAlive);
        Assert.Equal(TestData.Listing(source.Path), TestData.Listing(test.MountPoint));
        foreach ((string path, byte[] bytes) in files)
        {
            TestData.AssertSameBytes(bytes, test.PathOf(path));
            Assert.Equal(bytes.Length, new FileInfo(test.PathOf(path)).Length);
        }

        DatasetMountStats first = test.Mount.GetStats();
        long totalBytes = files.Values.Sum(b => (long)b.Length);
        Assert.True(first.OriginBytes >= totalBytes, $"origin bytes {first.OriginBytes} < dataset {totalBytes}");
        Assert.Equal(totalBytes, first.CachedBytes);

        // Second pass: drop the kernel's page cache so every read reaches our server, which must
        // serve it all from the chunk cache.
        foreach (string path in files.Keys)
        {
            Native.DropPageCache(test.PathOf(path));
        }
        foreach ((string path, byte[] bytes) in files)
        {
            TestData.AssertSameBytes(bytes, test.PathOf(path));
        }
        DatasetMountStats second = test.Mount.GetStats();
        Assert.Equal(first.OriginRequests, second.OriginRequests);
        Assert.Equal(first.OriginBytes, second.OriginBytes);
        Assert.True(second.CacheHits > first.CacheHits, "the second pass did not reach the FUSE server (page cache not dropped?)");
        Assert.True(second.BytesServed - first.BytesServed >= totalBytes, $"served {second.BytesServed - first.BytesServed} bytes in pass two, dataset is {totalBytes}");
        Assert.Equal(0, test.Mount.FileSystem.PassthroughOpensServed); // off unless asked for
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_Writes_AreRefused()
    {
        using var source = new TempDirectory("src");
        File.WriteAllText(Path.Combine(source.Path, "a.txt"), "hello");
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path);

        Assert.Equal("hello", File.ReadAllText(test.PathOf("a.txt")));
        Assert.ThrowsAny<IOException>(() => File.WriteAllText(test.PathOf("a.txt"), "changed"));
        Assert.ThrowsAny<IOException>(() => File.WriteAllText(test.PathOf("new.txt"), "x"));
        Assert.ThrowsAny<IOException>(() => Directory.CreateDirectory(test.PathOf("newdir")));
        Assert.Equal("hello", File.ReadAllText(Path.Combine(source.Path, "a.txt")));
        Assert.False(File.Exists(Path.Combine(source.Path, "new.txt")));
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_MissingName_IsENOENT_AndSymlinkReadsThrough()
    {
        using var source = new TempDirectory("src");
        Directory.CreateDirectory(Path.Combine(source.Path, "d"));
        File.WriteAllText(Path.Combine(source.Path, "d", "target.txt"), "through the link");
        File.CreateSymbolicLink(Path.Combine(source.Path, "link.txt"), "d/target.txt");
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path);

        Assert.False(File.Exists(test.PathOf("nope.txt")));
        Assert.Throws<FileNotFoundException>(() => File.ReadAllBytes(test.PathOf("nope.txt")));
        Assert.Equal("d/target.txt", new FileInfo(test.PathOf("link.txt")).LinkTarget);
        Assert.Equal("through the link", File.ReadAllText(test.PathOf("link.txt")));
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_ObjectChangedBetweenMounts_ServesNewVersionWithoutMixing()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        string file = Path.Combine(source.Path, "model.bin");
        byte[] v1 = TestData.Bytes(6 << 20, 11);
        File.WriteAllBytes(file, v1);
        using var temp = new TempDirectory("shared");
        DatasetHostOptions options = TestMount.HostOptions(temp, ChunkSize);

        await using (var host = new DatasetHost(options))
        {
            await using DatasetMount mount = await host.MountAsync(Options(source, temp, "m1"), TestContext.Current.CancellationToken);
            TestData.AssertSameBytes(v1, Path.Combine(mount.MountPoint, "model.bin"));
        }

        // Same size, other bytes, later mtime: a new version at the origin.
        byte[] v2 = TestData.Bytes(6 << 20, 12);
        File.WriteAllBytes(file, v2);
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddMinutes(1));

        await using (var host = new DatasetHost(options))
        {
            await using DatasetMount mount = await host.MountAsync(Options(source, temp, "m2"), TestContext.Current.CancellationToken);
            TestData.AssertSameBytes(v2, Path.Combine(mount.MountPoint, "model.bin"));
            Assert.True(mount.GetStats().OriginBytes >= v2.Length, "the new version must come from the origin, not the old chunks");
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_RefreshTtl_RevalidatesAndServesNewVersion()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        string file = Path.Combine(source.Path, "config.json");
        File.WriteAllText(file, "{\"version\": 1}");
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path, new() { ["refresh"] = "1s" });

        Assert.Equal("{\"version\": 1}", File.ReadAllText(test.PathOf("config.json")));
        File.WriteAllText(file, "{\"version\": 2, \"longer\": true}");
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddMinutes(1));
        File.WriteAllText(Path.Combine(source.Path, "added.txt"), "new file");

        await Task.Delay(TimeSpan.FromSeconds(1.5), TestContext.Current.CancellationToken);
        Assert.Equal("{\"version\": 2, \"longer\": true}", File.ReadAllText(test.PathOf("config.json")));
        Assert.Equal("new file", File.ReadAllText(test.PathOf("added.txt")));
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_QuotaSmallerThanDataset_ReadsCorrectlyWithinQuota()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        const int chunk = 1 << 20;
        Dictionary<string, byte[]> files = TestData.WriteDataset(source.Path, chunk);
        long total = files.Values.Sum(b => (long)b.Length);
        const long quota = 6L << 20;
        Assert.True(total > 2 * quota, "the dataset must be well over the quota for this test to mean anything");

        await using TestMount test = await TestMount.StartAsync("file://" + source.Path, hostOptions: t => TestMount.HostOptions(t, chunk) with
        {
            CacheQuotaBytes = quota,
            MemoryLimitBytes = 16L << 20,
        });

        for (int pass = 0; pass < 2; pass++)
        {
            foreach ((string path, byte[] bytes) in files)
            {
                Native.DropPageCache(test.PathOf(path));
                TestData.AssertSameBytes(bytes, test.PathOf(path));
                long used = test.Host.GetStats().Disk.UsedBytes;
                Assert.True(used <= quota, $"cache holds {used} bytes, quota {quota}");
            }
        }
        Assert.True(test.Host.DiskCache.GetStats().Evictions > 0, "a dataset twice the quota must evict");
        // Object files are sparse: what counts is the space allocated to them, as du reports it.
        long allocated = CsiCache.TestKit.DiskUsage.AllocatedBytes(test.Host.DiskCache.RootDirectory);
        Assert.True(allocated <= quota + (1 << 20), $"{allocated} bytes allocated under the cache root");
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_MemoryMedium_UsesMemoryCache()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] bytes = TestData.Bytes(3 << 20, 5);
        File.WriteAllBytes(Path.Combine(source.Path, "x.bin"), bytes);
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path, new() { ["cacheMedium"] = "memory" },
            t => TestMount.HostOptions(t) with { MemoryCacheDirectory = t.Sub("memcache") });

        TestData.AssertSameBytes(bytes, test.PathOf("x.bin"));
        DatasetHostStats stats = test.Host.GetStats();
        Assert.NotNull(stats.Memory);
        Assert.Equal(bytes.Length, stats.Memory!.UsedBytes);
        Assert.Equal(0, stats.Disk.UsedBytes);
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_PrefetchAll_CachesEverythingBeforeItIsRead()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Dictionary<string, byte[]> files = TestData.WriteDataset(source.Path, ChunkSize);
        // A generous origin timeout: CI runs every test assembly at once on two cores, and a prefetch
        // that times out is not retried (the reader fetches on demand), which would leave a hole here.
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path, new() { ["prefetch"] = "all" }, PatientOrigin);

        await test.Mount.PrefetchWalk.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        long total = files.Values.Sum(b => (long)b.Length);
        // Wait for the pool to drain rather than for a fixed time: under I/O contention the cache's
        // fsync per chunk can take seconds.
        var deadline = DateTime.UtcNow.AddSeconds(75);
        while ((test.Mount.GetStats().CachedBytes < total || !test.Host.Prefetcher.IsIdle) && test.Host.Prefetcher.Failed == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        Assert.True(test.Mount.GetStats().CachedBytes == total,
            $"cached {test.Mount.GetStats().CachedBytes} of {total} bytes; prefetch failed {test.Host.Prefetcher.Failed}, idle {test.Host.Prefetcher.IsIdle}");

        long originBytes = test.Mount.GetStats().OriginBytes;
        foreach ((string path, byte[] bytes) in files)
        {
            TestData.AssertSameBytes(bytes, test.PathOf(path));
        }
        Assert.Equal(originBytes, test.Mount.GetStats().OriginBytes);
    }

    [Theory(Timeout = 90_000)]
    [InlineData("metadata")]
    [InlineData("sub/**/*.txt,other/*")]
    public async Task Mount_PrefetchMetadataOrGlobs_WalksTheTreeAndFetchesOnlyWhatMatches(string prefetch)
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Dictionary<string, byte[]> files = TestData.WriteDataset(source.Path, ChunkSize);
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path, new() { ["prefetch"] = prefetch }, PatientOrigin);
        await test.Mount.PrefetchWalk.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        string[] wanted = prefetch == "metadata" ? [] : files.Keys.Where(p => (p.StartsWith("sub/", StringComparison.Ordinal) && p.EndsWith(".txt", StringComparison.Ordinal)) || p.StartsWith("other/", StringComparison.Ordinal)).ToArray();
        long expected = wanted.Sum(p => (long)files[p].Length);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((test.Mount.GetStats().OriginBytes < expected || !test.Host.Prefetcher.IsIdle) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        await Task.Delay(200, TestContext.Current.CancellationToken); // nothing else may arrive
        Assert.Equal(expected, test.Mount.GetStats().OriginBytes);

        // Every directory was listed: a recursive listing now costs the origin nothing.
        long requests = test.Mount.GetStats().OriginRequests;
        Assert.Equal(TestData.Listing(source.Path), TestData.Listing(test.MountPoint));
        Assert.Equal(requests, test.Mount.GetStats().OriginRequests);
        foreach (string path in wanted)
        {
            TestData.AssertSameBytes(files[path], test.PathOf(path));
        }
        Assert.Equal(expected, test.Mount.GetStats().OriginBytes);
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_SameDatasetTwice_SharesTheCache()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] bytes = TestData.Bytes(5 << 20, 21);
        File.WriteAllBytes(Path.Combine(source.Path, "shared.bin"), bytes);
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path);
        TestData.AssertSameBytes(bytes, test.PathOf("shared.bin"));

        await using DatasetMount second = await test.MountAgainAsync("file://" + source.Path, "second");
        TestData.AssertSameBytes(bytes, Path.Combine(second.MountPoint, "shared.bin"));
        Assert.Equal(0, second.GetStats().OriginBytes);
        Assert.Equal(bytes.Length, second.GetStats().CachedBytes);
        await second.StopAsync();
        await second.StopAsync(); // idempotent
        Assert.False(second.IsAlive);
        Assert.Null(MountInfo.Find(second.MountPoint));
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_DirectoryOfThousandsOfEntries_ListsEveryNameAcrossPages()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        string dir = source.Sub("many");
        const int count = 5000;
        for (int i = 0; i < count; i++)
        {
            File.WriteAllBytes(Path.Combine(dir, $"item-{i:D5}.txt"), i % 7 == 0 ? [] : [(byte)i]);
        }
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path);

        List<string> names = Directory.EnumerateFiles(test.PathOf("many")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList()!;
        Assert.Equal(Directory.EnumerateFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal), names);
        // ls -l: attributes of every entry (READDIRPLUS, then lookups served from memory).
        long total = new DirectoryInfo(test.PathOf("many")).EnumerateFiles().Sum(f => f.Length);
        Assert.Equal(count - ((count + 6) / 7), total);
        Assert.Equal([unchecked((byte)4999)], File.ReadAllBytes(test.PathOf("many/item-04999.txt")));
        Assert.True(test.Mount.Tree.TryGetNode(NodeIds.ForPath("many", 0), out DatasetEntry many));
        Assert.True(many.Listing!.PagesLoaded >= count / 1000, $"{many.Listing.PagesLoaded} pages");
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_FullyCachedFiles_SmallAndMultiChunk_AreServedByPassthroughWithoutModeConflicts()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] small = TestData.Bytes(300_000, 41);
        byte[] large = TestData.Bytes(ChunkSize + 5, 42);
        File.WriteAllBytes(Path.Combine(source.Path, "small.bin"), small);
        File.WriteAllBytes(Path.Combine(source.Path, "large.bin"), large);
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path, passthrough: PassthroughMode.Always);
        string path = test.PathOf("small.bin");
        DatasetFileSystem fs = test.Mount.FileSystem;

        // First open: not cached yet, served by READ. A second open while it is still open must
        // join the READ mode even though the file is cached by then (mixing modes fails open(2)).
        using (FileStream first = File.OpenRead(path))
        {
            byte[] read = new byte[small.Length];
            first.ReadExactly(read);
            Assert.Equal(small, read);
            using FileStream second = File.OpenRead(path);
            second.ReadExactly(read);
            Assert.Equal(small, read);
        }
        Assert.Equal(0, fs.PassthroughOpensServed);

        if (fs.Connection is not { PassthroughEnabled: true })
        {
            Assert.Fail("this kernel (6.9+) and root should negotiate FUSE_PASSTHROUGH; the Fuse layer did not");
        }

        // The kernel sends RELEASE after close(2) returns, asynchronously: wait until both handles
        // are gone, or the next open would still see a READ-mode handle and (rightly) join it.
        var released = DateTime.UtcNow.AddSeconds(10);
        while (fs.OpenFiles > 0 && DateTime.UtcNow < released)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.Equal(0, fs.OpenFiles);

        // Now cached whole and open nowhere: passthrough, shared by concurrent opens.
        Native.DropPageCache(path); // itself a passthrough open
        long servedBefore = test.Mount.GetStats().BytesServed;
        using (FileStream a = File.OpenRead(path))
        using (FileStream b = File.OpenRead(path))
        {
            byte[] ra = new byte[small.Length], rb = new byte[small.Length];
            a.ReadExactly(ra);
            b.ReadExactly(rb);
            Assert.Equal(small, ra);
            Assert.Equal(small, rb);
        }
        Assert.Equal(3, fs.PassthroughOpensServed);
        Assert.Equal(servedBefore, test.Mount.GetStats().BytesServed); // no READ reached us

        // After the last close the backing id is released; a new open registers it again.
        TestData.AssertSameBytes(small, path);
        Assert.Equal(4, fs.PassthroughOpensServed);

        // A file larger than one chunk: READ while it is being fetched, then, held whole in its
        // one object file, passthrough like any other.
        TestData.AssertSameBytes(large, test.PathOf("large.bin"));
        Assert.Equal(4, fs.PassthroughOpensServed);
        released = DateTime.UtcNow.AddSeconds(10);
        while (fs.OpenFiles > 0 && DateTime.UtcNow < released)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        servedBefore = test.Mount.GetStats().BytesServed;
        TestData.AssertSameBytes(large, test.PathOf("large.bin"));
        Assert.Equal(5, fs.PassthroughOpensServed);
        Assert.Equal(servedBefore, test.Mount.GetStats().BytesServed);
    }

    private static DatasetMountOptions Options(TempDirectory source, TempDirectory temp, string name) =>
        new("file://" + source.Path, new Dictionary<string, string>(), new Dictionary<string, string>(), Path.Combine(temp.Path, name));
}

/// <summary>Mount tests run one at a time: the machine has two cores and the timing assertions need them.</summary>
[CollectionDefinition(Name)]
public sealed class MountCollection
{
    public const string Name = "mounts";
}
