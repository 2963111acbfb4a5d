using CsiCache.Fuse;

namespace CsiCache.Datasets.Tests;

/// <summary>Real FUSE mounts over a POSIX directory origin (file:///).</summary>
[Collection(MountCollection.Name)]
public sealed class PosixMountTests
{
    private const int ChunkSize = 4 << 20;

    [Fact]
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
        Assert.True(second.BytesServed >= first.BytesServed + totalBytes - (1 << 20), $"served {second.BytesServed - first.BytesServed} bytes in pass two, dataset is {totalBytes}");
    }

    [Fact]
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

    [Fact]
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

    [Fact]
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

    [Fact]
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

    [Fact]
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
        Assert.True(Directory.EnumerateFiles(test.Host.DiskCache.RootDirectory, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) <= quota + (1 << 20));
    }

    [Fact]
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

    [Fact]
    public async Task Mount_PrefetchAll_CachesEverythingBeforeItIsRead()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Dictionary<string, byte[]> files = TestData.WriteDataset(source.Path, ChunkSize);
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path, new() { ["prefetch"] = "all" });

        await test.Mount.PrefetchWalk.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        long total = files.Values.Sum(b => (long)b.Length);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (test.Mount.GetStats().CachedBytes < total && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        Assert.Equal(total, test.Mount.GetStats().CachedBytes);

        long originBytes = test.Mount.GetStats().OriginBytes;
        foreach ((string path, byte[] bytes) in files)
        {
            TestData.AssertSameBytes(bytes, test.PathOf(path));
        }
        Assert.Equal(originBytes, test.Mount.GetStats().OriginBytes);
    }

    [Fact]
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

    private static DatasetMountOptions Options(TempDirectory source, TempDirectory temp, string name) =>
        new("file://" + source.Path, new Dictionary<string, string>(), new Dictionary<string, string>(), Path.Combine(temp.Path, name));
}

/// <summary>Mount tests run one at a time: the machine has two cores and the timing assertions need them.</summary>
[CollectionDefinition(Name)]
public sealed class MountCollection
{
    public const string Name = "mounts";
}
