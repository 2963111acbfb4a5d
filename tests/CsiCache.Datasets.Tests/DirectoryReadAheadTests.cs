using System.Diagnostics;

namespace CsiCache.Datasets.Tests;

/// <summary>
/// Directory read-ahead on real FUSE mounts: the first read of a small file fetches its directory's
/// other small files in the background, once, in one GET each, and nothing else.
/// </summary>
[Collection(MountCollection.Name)]
public sealed class DirectoryReadAheadTests
{
    private const int ChunkSize = 4 << 20;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 90_000)]
    public async Task HttpOrigin_FirstReadFetchesTheDirectorysSmallFiles_OneGetEach_NotLargeOnesOrOtherDirectories()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Dictionary<string, byte[]> small = WriteSmallFiles(source.Path, "train", 24, seed: 1);
        Dictionary<string, byte[]> elsewhere = WriteSmallFiles(source.Path, "val", 5, seed: 2);
        byte[] large = TestData.Bytes(ChunkSize + 1000, 3);
        File.WriteAllBytes(Path.Combine(source.Path, "train", "shard.tar"), large);
        File.WriteAllBytes(Path.Combine(source.Path, "train", "empty.txt"), []);
        Directory.CreateDirectory(Path.Combine(source.Path, "train", "nested"));
        File.WriteAllBytes(Path.Combine(source.Path, "train", "nested", "deep.bin"), TestData.Bytes(5000, 4));
        await using HttpTestOrigin server = await HttpTestOrigin.StartAsync(source.Path);
        await using TestMount test = await TestMount.StartAsync(server.BaseUri.AbsoluteUri, directoryReadAhead: true);

        string first = small.Keys.Order(StringComparer.Ordinal).ElementAt(7);
        TestData.AssertSameBytes(small[first], test.PathOf(first));
        await WaitForIdleAsync(test, () => test.Mount.ReadAhead!.FilesQueued >= small.Count - 1);

        Assert.Equal(1, test.Mount.ReadAhead!.DirectoriesWalked);
        Assert.Equal(small.Count - 1, test.Mount.ReadAhead!.FilesQueued); // all but the one being read
        foreach (string path in small.Keys)
        {
            // One GET per small file (its version and its bytes at once), no HEAD.
            Assert.Single(server.Requests, r => r.Path == "/" + path);
        }
        Assert.DoesNotContain(server.Requests, r => r.Path.StartsWith("/val/", StringComparison.Ordinal));
        Assert.DoesNotContain(server.Requests, r => r.Path == "/train/shard.tar" || r.Path == "/train/nested/deep.bin" || r.Path == "/train/empty.txt");
        Assert.Equal(small.Values.Sum(b => (long)b.Length), test.Mount.GetStats().CachedBytes);

        // Reading them now costs the origin nothing.
        int requests = server.RequestCount;
        foreach ((string path, byte[] bytes) in small)
        {
            TestData.AssertSameBytes(bytes, test.PathOf(path));
        }
        Assert.Equal(requests, server.RequestCount);

        // A file of another directory starts that directory's walk, once.
        string other = elsewhere.Keys.Order(StringComparer.Ordinal).First();
        TestData.AssertSameBytes(elsewhere[other], test.PathOf(other));
        await WaitForIdleAsync(test, () => test.Mount.ReadAhead!.FilesQueued >= small.Count - 1 + elsewhere.Count - 1);
        Assert.Equal(2, test.Mount.ReadAhead!.DirectoriesWalked);
        foreach ((string path, byte[] bytes) in elsewhere)
        {
            Assert.Single(server.Requests, r => r.Path == "/" + path);
            TestData.AssertSameBytes(bytes, test.PathOf(path));
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task ListingAndStatOnly_FetchNothing()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Dictionary<string, byte[]> small = WriteSmallFiles(source.Path, "train", 10, seed: 5);
        await using HttpTestOrigin server = await HttpTestOrigin.StartAsync(source.Path);
        await using TestMount test = await TestMount.StartAsync(server.BaseUri.AbsoluteUri, directoryReadAhead: true);

        Assert.Equal(TestData.Listing(source.Path), TestData.Listing(test.MountPoint));
        foreach (string path in small.Keys)
        {
            Assert.Equal(small[path].Length, new FileInfo(test.PathOf(path)).Length);
        }
        await Task.Delay(200, Ct);
        Assert.True(test.Host.Prefetcher.IsIdle);
        Assert.Equal(0, test.Mount.ReadAhead!.DirectoriesWalked);
        Assert.DoesNotContain(server.Requests, r => r.Method == "GET" && r.Path.StartsWith("/train/", StringComparison.Ordinal) && r.Path != "/train/");
    }

    [Fact(Timeout = 90_000)]
    public async Task Off_AReadFetchesOnlyItsFile()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Dictionary<string, byte[]> small = WriteSmallFiles(source.Path, "train", 10, seed: 6);
        await using HttpTestOrigin server = await HttpTestOrigin.StartAsync(source.Path);
        await using TestMount test = await TestMount.StartAsync(server.BaseUri.AbsoluteUri, directoryReadAhead: false);
        Assert.Null(test.Mount.ReadAhead);

        string first = small.Keys.Order(StringComparer.Ordinal).First();
        TestData.AssertSameBytes(small[first], test.PathOf(first));
        await Task.Delay(200, Ct);
        Assert.True(test.Host.Prefetcher.IsIdle);
        Assert.Equal(["/" + first], server.Requests.Where(r => r.Method == "GET" && r.RangeStart is not null).Select(r => r.Path).ToArray());
        Assert.Equal(small[first].Length, test.Mount.GetStats().CachedBytes);
    }

    [Fact(Timeout = 90_000)]
    public async Task PosixOrigin_VersionsFromTheListing_ConcurrentReadersStillOneFetchPerFile()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Dictionary<string, byte[]> small = WriteSmallFiles(source.Path, "d", 200, seed: 7);
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path, directoryReadAhead: true);

        // Four readers over the whole directory in shuffled orders, racing the walk.
        string[] paths = small.Keys.ToArray();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Task.Run(() =>
        {
            string[] order = (string[])paths.Clone();
            new Random(i).Shuffle(order);
            foreach (string path in order)
            {
                TestData.AssertSameBytes(small[path], test.PathOf(path));
            }
        }, Ct)));
        await WaitForIdleAsync(test, () => true);

        DatasetMountStats stats = test.Mount.GetStats();
        Assert.Equal(small.Values.Sum(b => (long)b.Length), stats.CachedBytes);
        // Every file's one chunk crossed from the origin once, whoever asked first.
        Assert.Equal(small.Values.Sum(b => (long)b.Length), stats.OriginBytes);
    }

    [Fact(Timeout = 90_000)]
    public async Task Unmount_WhileTheWalkWaitsOnASlowOrigin_StopsPromptly()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Dictionary<string, byte[]> small = WriteSmallFiles(source.Path, "train", 64, seed: 8);
        await using HttpTestOrigin server = await HttpTestOrigin.StartAsync(source.Path);
        TestMount test = await TestMount.StartAsync(server.BaseUri.AbsoluteUri, directoryReadAhead: true);
        try
        {
            string first = small.Keys.Order(StringComparer.Ordinal).First();
            TestData.AssertSameBytes(small[first], test.PathOf(first));
            server.ThrottleBytesPerSecond = 16 << 10; // each further file takes seconds
            DateTime deadline = DateTime.UtcNow.AddSeconds(10);
            while (test.Mount.ReadAhead!.FilesQueued < 4 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(10, Ct);
            }
            Assert.True(test.Mount.ReadAhead!.FilesQueued >= 4, "the walk did not start");
        }
        finally
        {
            var stop = Stopwatch.StartNew();
            await test.DisposeAsync();
            Assert.True(stop.Elapsed < TimeSpan.FromSeconds(10), $"stopping took {stop.Elapsed}");
        }
    }

    /// <summary><paramref name="count"/> files of 1–120 KB in <paramref name="directory"/>; keys are '/'-separated relative paths.</summary>
    private static Dictionary<string, byte[]> WriteSmallFiles(string root, string directory, int count, int seed)
    {
        Directory.CreateDirectory(Path.Combine(root, directory));
        var files = new Dictionary<string, byte[]>();
        var random = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            byte[] bytes = TestData.Bytes(random.Next(1000, 120_000), (seed * 1000) + i);
            string name = $"{directory}/img{i:D4}.jpg";
            File.WriteAllBytes(Path.Combine(root, name), bytes);
            files[name] = bytes;
        }
        return files;
    }

    /// <summary>Waits until <paramref name="condition"/> holds and the node's prefetch pool has nothing left to do.</summary>
    private static async Task WaitForIdleAsync(TestMount test, Func<bool> condition)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while ((!condition() || !test.Host.Prefetcher.IsIdle) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, Ct);
        }
        Assert.True(condition(), "the directory read-ahead did not queue what it should have");
        Assert.True(test.Host.Prefetcher.IsIdle, "the prefetch pool was still busy");
    }
}
