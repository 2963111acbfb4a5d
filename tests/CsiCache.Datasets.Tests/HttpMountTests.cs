using System.Diagnostics;

namespace CsiCache.Datasets.Tests;

/// <summary>Real FUSE mounts over an in-process HTTP origin (nginx-style autoindex, Range, ETags).</summary>
[Collection(MountCollection.Name)]
public sealed class HttpMountTests
{
    private const int ChunkSize = 4 << 20;

    [Fact(Timeout = 90_000)]
    public async Task Mount_HttpOrigin_EveryByteAndListingMatchesAndSecondPassMakesNoRequests()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Dictionary<string, byte[]> files = TestData.WriteDataset(source.Path, ChunkSize);
        await using HttpTestOrigin server = await HttpTestOrigin.StartAsync(source.Path);
        await using TestMount test = await TestMount.StartAsync(server.BaseUri.AbsoluteUri);

        Assert.Equal(TestData.Listing(source.Path), TestData.Listing(test.MountPoint));
        foreach ((string path, byte[] bytes) in files)
        {
            TestData.AssertSameBytes(bytes, test.PathOf(path));
        }
        foreach ((string path, byte[] bytes) in files)
        {
            // Each chunk of each file came from the origin exactly once.
            long chunks = (bytes.Length + ChunkSize - 1) / ChunkSize;
            List<OriginRequest> reads = server.DataRequests(path);
            Assert.Equal(chunks, reads.Count);
            Assert.Equal(chunks, reads.Select(r => r.RangeStart).Distinct().Count());
        }
        // The first open of a file of one chunk costs one GET (the whole file, with its version),
        // not a HEAD and a GET; empty files (nothing to read) and larger ones are stat'ed with a HEAD.
        HashSet<string> statted = files.Where(f => f.Value.Length == 0 || f.Value.Length > ChunkSize).Select(f => "/" + f.Key).ToHashSet();
        Assert.DoesNotContain(server.Requests, r => r.Method == "HEAD" && !statted.Contains(r.Path));
        Assert.Contains(server.Requests, r => r.Method == "HEAD" && r.Path == "/sub/nine-mib.bin");

        int requestsAfterFirstPass = server.RequestCount;
        long hitsAfterFirstPass = test.Mount.GetStats().CacheHits;
        foreach (string path in files.Keys)
        {
            Native.DropPageCache(test.PathOf(path));
        }
        Assert.Equal(TestData.Listing(source.Path), TestData.Listing(test.MountPoint));
        foreach ((string path, byte[] bytes) in files)
        {
            TestData.AssertSameBytes(bytes, test.PathOf(path));
        }
        Assert.Equal(requestsAfterFirstPass, server.RequestCount);
        Assert.True(test.Mount.GetStats().CacheHits > hitsAfterFirstPass, "the second pass never reached the FUSE server");
        Assert.Equal(server.RequestCount, test.Mount.GetStats().OriginRequests);
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_SixteenConcurrentReadersOfOneFile_AllCorrectWithOneFetchPerChunk()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] big = TestData.Bytes(40 << 20, 99);
        File.WriteAllBytes(Path.Combine(source.Path, "big.bin"), big);
        await using HttpTestOrigin server = await HttpTestOrigin.StartAsync(source.Path);
        // Slow enough that the readers pile up on chunks still being fetched.
        server.ThrottleBytesPerSecond = 64L << 20;
        await using TestMount test = await TestMount.StartAsync(server.BaseUri.AbsoluteUri);
        string path = test.PathOf("big.bin");
        string expected = TestData.Sha256(big);

        using var start = new Barrier(16);
        Task<string>[] readers = Enumerable.Range(0, 16).Select(i => Task.Run(() =>
        {
            // Half the readers use O_DIRECT so their READs reach the server instead of being merged
            // in the shared page cache; the other half read through it, as most programs do.
            if (!start.SignalAndWait(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken))
            {
                throw new TimeoutException("readers did not start together");
            }
            if (i % 2 == 0)
            {
                return Native.Sha256Direct(path);
            }
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0);
            using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
            byte[] buffer = new byte[1 << 20];
            int n;
            while ((n = stream.Read(buffer)) > 0)
            {
                sha.AppendData(buffer, 0, n);
            }
            return Convert.ToHexStringLower(sha.GetHashAndReset());
        }, TestContext.Current.CancellationToken)).ToArray();

        var clock = Stopwatch.StartNew();
        string[] hashes = await Task.WhenAll(readers).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        TestContext.Current.SendDiagnosticMessage($"16 readers x {big.Length >> 20} MiB: {clock.Elapsed.TotalSeconds:0.00}s");
        Assert.All(hashes, h => Assert.Equal(expected, h));

        List<OriginRequest> reads = server.DataRequests("big.bin");
        long chunks = big.Length / ChunkSize;
        Assert.Equal(chunks, reads.Count);
        Assert.Equal(Enumerable.Range(0, (int)chunks).Select(i => (long?)i * ChunkSize), reads.Select(r => r.RangeStart).Order());
        Assert.Equal(big.Length, test.Mount.GetStats().OriginBytes); // every byte fetched once, by readers or read-ahead
        Assert.True(test.Mount.GetStats().BytesServed >= 8L * big.Length, "the O_DIRECT readers' READs must all have reached the server");
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_OriginKilledMidRead_ReadFailsWithEioInTime_CachedFilesStillRead()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] cachedFile = TestData.Bytes(3 << 20, 7);
        byte[] slowFile = TestData.Bytes(16 << 20, 8);
        File.WriteAllBytes(Path.Combine(source.Path, "cached.bin"), cachedFile);
        File.WriteAllBytes(Path.Combine(source.Path, "slow.bin"), slowFile);
        await using HttpTestOrigin server = await HttpTestOrigin.StartAsync(source.Path);
        await using TestMount test = await TestMount.StartAsync(server.BaseUri.AbsoluteUri);
        TestData.AssertSameBytes(cachedFile, test.PathOf("cached.bin"));
        Assert.True(File.Exists(test.PathOf("slow.bin")));

        // 1 MiB/s: the first 4 MiB chunk of slow.bin takes seconds, so the kill lands mid-body.
        server.ThrottleBytesPerSecond = 1 << 20;
        Task<Exception?> reading = Task.Run(() =>
        {
            try
            {
                File.ReadAllBytes(test.PathOf("slow.bin"));
                return null;
            }
            catch (Exception e)
            {
                return e;
            }
        }, TestContext.Current.CancellationToken);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!server.Started.Contains("GET /slow.bin") && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
        await Task.Delay(300, TestContext.Current.CancellationToken);
        Assert.False(reading.IsCompleted, "the read finished before the origin was killed; the test proves nothing");

        var clock = Stopwatch.StartNew();
        await server.KillAsync();
        Exception? failure = await reading.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        clock.Stop();

        Assert.NotNull(failure);
        IOException io = Assert.IsAssignableFrom<IOException>(failure);
        Assert.Contains("Input/output error", io.Message, StringComparison.OrdinalIgnoreCase);
        // Per-attempt timeout 2 s, one retry: the origin layer gives up within 2 × 2 s + backoff.
        TimeSpan bound = TimeSpan.FromSeconds(2 * 2 + 2);
        Assert.True(clock.Elapsed < bound, $"EIO took {clock.Elapsed.TotalSeconds:0.0}s, bound {bound.TotalSeconds}s");

        Native.DropPageCache(test.PathOf("cached.bin"));
        TestData.AssertSameBytes(cachedFile, test.PathOf("cached.bin"));
        Assert.True(test.Mount.IsAlive);
    }

    [Fact(Timeout = 90_000)]
    public async Task Mount_HttpObjectChangedBetweenMounts_ServesNewBytes()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        string file = Path.Combine(source.Path, "data.bin");
        byte[] v1 = TestData.Bytes(5 << 20, 31);
        File.WriteAllBytes(file, v1);
        await using HttpTestOrigin server = await HttpTestOrigin.StartAsync(source.Path);
        using var temp = new TempDirectory("shared");
        DatasetHostOptions options = TestMount.HostOptions(temp, ChunkSize);
        var parameters = new Dictionary<string, string>();
        var secrets = new Dictionary<string, string>();

        await using (var host = new DatasetHost(options))
        {
            await using DatasetMount mount = await host.MountAsync(new(server.BaseUri.AbsoluteUri, parameters, secrets, Path.Combine(temp.Path, "m1")), TestContext.Current.CancellationToken);
            TestData.AssertSameBytes(v1, Path.Combine(mount.MountPoint, "data.bin"));
        }

        byte[] v2 = TestData.Bytes(5 << 20, 32);
        File.WriteAllBytes(file, v2);
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddMinutes(1));
        int before = server.DataRequests("data.bin").Count;

        await using (var host = new DatasetHost(options))
        {
            await using DatasetMount mount = await host.MountAsync(new(server.BaseUri.AbsoluteUri, parameters, secrets, Path.Combine(temp.Path, "m2")), TestContext.Current.CancellationToken);
            TestData.AssertSameBytes(v2, Path.Combine(mount.MountPoint, "data.bin"));
        }
        Assert.Equal(2, server.DataRequests("data.bin").Count - before);
    }
}
