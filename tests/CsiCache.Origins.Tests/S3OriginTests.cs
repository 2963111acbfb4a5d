using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace CsiCache.Origins.Tests;

public sealed class S3OriginTests : IClassFixture<S3ServerFixture>
{
    private static readonly OriginOptions FastRetries = new()
    {
        RequestTimeout = TimeSpan.FromSeconds(10),
        MaxRetries = 2,
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
        RetryMaxDelay = TimeSpan.FromMilliseconds(50),
    };

    private readonly S3ServerFixture _fx;

    public S3OriginTests(S3ServerFixture fx) => _fx = fx;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private IOrigin Create(string prefix = "", OriginOptions? options = null, Dictionary<string, string>? parameters = null, Dictionary<string, string>? secrets = null)
    {
        parameters ??= new Dictionary<string, string>();
        parameters.TryAdd("endpoint", _fx.Endpoint.AbsoluteUri);
        var source = DatasetSource.Parse($"s3://{S3ServerFixture.Bucket}/{prefix}", parameters);
        secrets ??= new Dictionary<string, string> { ["accessKeyId"] = S3ServerFixture.AccessKeyId, ["secretAccessKey"] = S3ServerFixture.SecretAccessKey };
        return OriginFactory.Create(source, secrets, options ?? FastRetries);
    }

    private static async Task<(List<OriginEntry> Entries, List<int> Pages)> ListAllAsync(IOrigin origin, string dir)
    {
        var all = new List<OriginEntry>();
        var pages = new List<int>();
        string? token = null;
        do
        {
            var page = await origin.ListAsync(dir, token, Ct);
            all.AddRange(page.Entries);
            pages.Add(page.Entries.Count);
            token = page.ContinuationToken;
        }
        while (token is not null);
        return (all, pages);
    }

    [Fact]
    public async Task List_Root_PrefixesAreDirectoriesObjectsAreFiles()
    {
        using var origin = Create();
        var (entries, _) = await ListAllAsync(origin, "");
        var byName = entries.ToDictionary(e => e.Name);

        foreach (string dir in new[] { "big", "folder-marker", "many", "nested", "odd" })
            Assert.Equal(OriginEntryKind.Directory, byName[dir].Kind);
        Assert.Equal(OriginEntryKind.File, byName["top.bin"].Kind);
        Assert.Equal(1000, byName["top.bin"].Size);
        Assert.Equal(_fx.ETags["top.bin"], byName["top.bin"].Version);
        Assert.NotNull(byName["top.bin"].Modified);
    }

    [Fact]
    public async Task List_NestedAndFolderMarker()
    {
        using var origin = Create();
        var nested = (await ListAllAsync(origin, "nested")).Entries;
        Assert.Equal([("a", OriginEntryKind.Directory), ("b.txt", OriginEntryKind.File)], nested.Select(e => (e.Name, e.Kind)).OrderBy(x => x.Name, StringComparer.Ordinal));
        var deep = (await ListAllAsync(origin, "nested/a/b")).Entries;
        Assert.Equal(("deep.bin", 30L), (Assert.Single(deep).Name, deep[0].Size));
        // The console-style "folder-marker/" object is not an entry of its own directory.
        var marker = (await ListAllAsync(origin, "folder-marker")).Entries;
        Assert.Equal("x.txt", Assert.Single(marker).Name);
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.ListAsync("no-such-dir", null, Ct));
    }

    [Theory]
    [InlineData(1000, new[] { 1000, S3ServerFixture.ManyCount - 1000 })]
    [InlineData(300, new[] { 300, 300, 300, 200 })]
    public async Task List_MoreThanOnePage_AllKeysOnce(int pageSize, int[] expectedPages)
    {
        using var origin = Create(options: FastRetries with { ListPageSize = pageSize });
        var (entries, pages) = await ListAllAsync(origin, "many");
        Assert.Equal(expectedPages, pages);
        Assert.Equal(Enumerable.Range(0, S3ServerFixture.ManyCount).Select(i => $"item-{i:D5}"), entries.Select(e => e.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task StatAndRead_BigObject_WholeAndOddRanges()
    {
        using var origin = Create();
        byte[] content = _fx.Objects["big/blob.bin"];
        var obj = await origin.StatAsync("big/blob.bin", Ct);
        Assert.Equal(content.Length, obj.Size);
        Assert.Equal(_fx.ETags["big/blob.bin"], obj.Version);

        var whole = new byte[obj.Size];
        Assert.Equal(whole.Length, await origin.ReadAsync(obj, 0, whole, Ct));
        Assert.Equal(SHA256.HashData(content), SHA256.HashData(whole));

        foreach (var (offset, length) in new[] { (1L, 1), (4095L, 4097), (1_048_575L, 1_048_577), (content.Length - 10L, 100) })
        {
            var buffer = new byte[length];
            int n = await origin.ReadAsync(obj, offset, buffer, Ct);
            int expected = (int)Math.Min(length, content.Length - offset);
            Assert.Equal(expected, n);
            Assert.Equal(content.AsSpan((int)offset, expected).ToArray(), buffer.AsSpan(0, n).ToArray());
        }
    }

    [Fact]
    public async Task OddNames_ListStatRead()
    {
        using var origin = Create("odd/");
        var names = (await ListAllAsync(origin, "")).Entries.Select(e => e.Name).ToHashSet();
        foreach (string name in HttpServerFixture.OddNames)
        {
            Assert.Contains(name, names);
            var obj = await origin.StatAsync(name, Ct);
            var buffer = new byte[obj.Size];
            await origin.ReadAsync(obj, 0, buffer, Ct);
            Assert.Equal(_fx.Objects["odd/" + name], buffer);
        }
    }

    [Fact]
    public async Task Stat_MissingKeyOrPrefix_NotFound()
    {
        using var origin = Create();
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.StatAsync("nope.bin", Ct));
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.StatAsync("nested", Ct));
    }

    [Fact]
    public async Task SubPath_RootsTheOriginUnderThePrefix()
    {
        using var origin = Create("nested/", parameters: new Dictionary<string, string> { ["subPath"] = "a" });
        var entries = (await ListAllAsync(origin, "")).Entries;
        Assert.Equal(["b", "file.txt"], entries.Select(e => e.Name).Order(StringComparer.Ordinal));
        var obj = await origin.StatAsync("b/deep.bin", Ct);
        Assert.Equal(30, obj.Size);
    }

    [Fact]
    public async Task Read_ObjectOverwrittenAfterStat_ObjectChanged()
    {
        await _fx.PutAsync("changing/obj.bin", TestData.Bytes(10_000, 70));
        using var origin = Create();
        var obj = await origin.StatAsync("changing/obj.bin", Ct);
        await _fx.PutAsync("changing/obj.bin", TestData.Bytes(10_000, 71));

        await Assert.ThrowsAsync<OriginObjectChangedException>(() => origin.ReadAsync(obj, 500, new byte[1000], Ct));

        var fresh = await origin.StatAsync("changing/obj.bin", Ct);
        Assert.NotEqual(obj.Version, fresh.Version);
        var buffer = new byte[1000];
        await origin.ReadAsync(fresh, 500, buffer, Ct);
        Assert.Equal(TestData.Bytes(10_000, 71).AsSpan(500, 1000).ToArray(), buffer);
    }

    [Fact]
    public async Task Read_ObjectDeletedAfterStat_NotFound()
    {
        await _fx.PutAsync("deleted/obj.bin", TestData.Bytes(100, 72));
        using var origin = Create();
        var obj = await origin.StatAsync("deleted/obj.bin", Ct);
        await _fx.Client.DeleteObjectAsync(S3ServerFixture.Bucket, "deleted/obj.bin", Ct);
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.ReadAsync(obj, 0, new byte[10], Ct));
    }

    [Fact]
    public async Task WrongCredentials_AccessDenied_SecretNotInMessage()
    {
        // s3rver checks that the access key id exists but does not verify SigV4 signatures, so
        // the key id is what is wrong here; the secret must still stay out of every message.
        var secrets = new Dictionary<string, string> { ["accessKeyId"] = "AKIAWRONGKEYID", ["secretAccessKey"] = "Wr0ngS3cretValue" };
        using var origin = Create(secrets: secrets);
        var e = await Assert.ThrowsAsync<OriginAccessDeniedException>(() => origin.StatAsync("top.bin", Ct));
        Assert.DoesNotContain("Wr0ngS3cretValue", e.Message);
        Assert.Contains("secretAccessKey", e.Message); // says what to check
        var list = await Assert.ThrowsAsync<OriginAccessDeniedException>(() => origin.ListAsync("", null, Ct));
        Assert.DoesNotContain("Wr0ngS3cretValue", list.ToString());
    }

    [Fact]
    public async Task Anonymous_UnsignedRequestsWork()
    {
        // s3rver serves unsigned requests (no bucket policies): this checks that anonymous=true
        // sends no Authorization and still reads.
        using var origin = Create(parameters: new Dictionary<string, string> { ["anonymous"] = "true" }, secrets: []);
        var obj = await origin.StatAsync("top.bin", Ct);
        var buffer = new byte[obj.Size];
        await origin.ReadAsync(obj, 0, buffer, Ct);
        Assert.Equal(_fx.Objects["top.bin"], buffer);
    }

    [Fact]
    public async Task MissingBucket_NotFound()
    {
        var source = DatasetSource.Parse("s3://no-such-bucket/x/", new Dictionary<string, string> { ["endpoint"] = _fx.Endpoint.AbsoluteUri });
        using var origin = OriginFactory.Create(source, new Dictionary<string, string> { ["accessKeyId"] = "S3RVER", ["secretAccessKey"] = "S3RVER" }, FastRetries);
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.ListAsync("", null, Ct));
    }

    [Fact]
    public async Task DeadEndpoint_UnavailableWithinBound()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var options = FastRetries with { RequestTimeout = TimeSpan.FromSeconds(2) };
        var source = DatasetSource.Parse("s3://bucket/x/", new Dictionary<string, string> { ["endpoint"] = $"http://127.0.0.1:{port}" });
        using var origin = OriginFactory.Create(source, new Dictionary<string, string> { ["accessKeyId"] = "a", ["secretAccessKey"] = "hunter2-secret" }, options);

        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<OriginUnavailableException>(() => origin.StatAsync("y.bin", Ct));
        sw.Stop();

        Assert.Contains($"{options.MaxRetries + 1} attempts", e.Message);
        Assert.DoesNotContain("hunter2", e.ToString());
        Assert.True(sw.Elapsed < (options.RequestTimeout * (options.MaxRetries + 1)) + TimeSpan.FromSeconds(3), $"took {sw.Elapsed}");
    }
    [Fact]
    public async Task BlackHoleEndpoint_TimesOutWithinBound()
    {
        // Accepts TCP connections (kernel backlog) and never answers.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            var options = FastRetries with { RequestTimeout = TimeSpan.FromMilliseconds(500), MaxRetries = 1 };
            var source = DatasetSource.Parse("s3://bucket/x/", new Dictionary<string, string> { ["endpoint"] = $"http://127.0.0.1:{port}" });
            using var origin = OriginFactory.Create(source, new Dictionary<string, string> { ["accessKeyId"] = "a", ["secretAccessKey"] = "b" }, options);

            var sw = Stopwatch.StartNew();
            var e = await Assert.ThrowsAsync<OriginUnavailableException>(() => origin.ListAsync("", null, Ct));
            sw.Stop();

            Assert.Contains("2 attempts", e.Message);
            Assert.True(sw.Elapsed >= options.RequestTimeout * 2, $"gave up early: {sw.Elapsed}");
            Assert.True(sw.Elapsed < (options.RequestTimeout * 2) + TimeSpan.FromSeconds(3), $"took {sw.Elapsed}");
        }
        finally
        {
            listener.Stop();
        }
    }
    [Fact]
    public async Task Read_ManyParallelChunks_AssembleTheObject()
    {
        // The dataset layer reads chunks concurrently through one origin.
        using var origin = Create();
        byte[] content = _fx.Objects["big/blob.bin"];
        var obj = await origin.StatAsync("big/blob.bin", Ct);
        const int chunk = 256 * 1024;
        var assembled = new byte[obj.Size];
        int chunks = (int)((obj.Size + chunk - 1) / chunk);
        await Parallel.ForEachAsync(Enumerable.Range(0, chunks), new ParallelOptions { MaxDegreeOfParallelism = 12, CancellationToken = Ct }, async (i, ct) =>
        {
            long offset = (long)i * chunk;
            int n = await origin.ReadAsync(obj, offset, assembled.AsMemory((int)offset, (int)Math.Min(chunk, obj.Size - offset)), ct);
            Assert.Equal((int)Math.Min(chunk, obj.Size - offset), n);
        });
        Assert.Equal(SHA256.HashData(content), SHA256.HashData(assembled));
    }
}
