using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace CsiCache.Origins.Tests;

/// <summary>A populated <see cref="LocalHttpServer"/> shared by the HTTP tests of one class.</summary>
public sealed class HttpServerFixture : IAsyncLifetime
{
    public static readonly string[] OddNames = ["with space.bin", "ünï©ødé.txt", "100%.dat", "hash#tag.txt", "a+b&c;d=e.txt"];

    private readonly TempDir _dir = new("csicache-http-");

    internal LocalHttpServer Server { get; private set; } = null!;

    public string Root => _dir.Path;

    public Dictionary<string, byte[]> Files { get; } = new();

    public const int ManyCount = 1500;

    public async ValueTask InitializeAsync()
    {
        Add("plain.bin", TestData.Bytes(200_000, 10));
        Add("small.txt", TestData.Bytes(100, 11));
        Add("empty.bin", []);
        for (int i = 0; i < OddNames.Length; i++)
            Add(OddNames[i], TestData.Bytes(2000 + i, 20 + i));
        Add("sub dir/inner.bin", TestData.Bytes(3000, 30));
        Add("sub dir/deeper/x.bin", TestData.Bytes(10, 31));
        Directory.CreateDirectory(Path.Join(_dir.Path, "many"));
        for (int i = 0; i < ManyCount; i++)
            File.WriteAllBytes(Path.Join(_dir.Path, "many", $"item-{i:D5}"), []);
        Server = await LocalHttpServer.StartAsync(_dir.Path);
    }

    private void Add(string relative, byte[] content)
    {
        _dir.Write(relative, content);
        Files[relative] = content;
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _dir.Dispose();
    }
}

public sealed class HttpOriginTests : IClassFixture<HttpServerFixture>
{
    private static readonly OriginOptions FastRetries = new()
    {
        RequestTimeout = TimeSpan.FromSeconds(5),
        MaxRetries = 3,
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
        RetryMaxDelay = TimeSpan.FromMilliseconds(50),
    };

    private readonly HttpServerFixture _fx;

    public HttpOriginTests(HttpServerFixture fx) => _fx = fx;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private IOrigin Create(string mode, string relative = "", OriginOptions? options = null, IReadOnlyDictionary<string, string>? secrets = null)
    {
        var source = DatasetSource.Parse(_fx.Server.Url(mode, relative).AbsoluteUri, TestData.NoParameters);
        return OriginFactory.Create(source, secrets, options ?? FastRetries);
    }

    private static async Task<List<OriginEntry>> ListAllAsync(IOrigin origin, string dir)
    {
        var all = new List<OriginEntry>();
        string? token = null;
        do
        {
            var page = await origin.ListAsync(dir, token, Ct);
            all.AddRange(page.Entries);
            token = page.ContinuationToken;
        }
        while (token is not null);
        return all;
    }

    [Theory]
    [InlineData("nginx", true)]
    [InlineData("json", true)]
    [InlineData("apache", false)]
    [InlineData("apache-table", false)]
    [InlineData("apache-list", false)]
    public async Task List_EachListingStyle_NamesKindsAndSizes(string mode, bool exactSizes)
    {
        using var origin = Create(mode);

        var entries = (await ListAllAsync(origin, "")).ToDictionary(e => e.Name);

        var expectedNames = Directory.EnumerateFileSystemEntries(_fx.Root).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expectedNames, entries.Keys.Order(StringComparer.Ordinal).ToList());
        Assert.Equal(OriginEntryKind.Directory, entries["sub dir"].Kind);
        Assert.Equal(OriginEntryKind.Directory, entries["many"].Kind);
        foreach (var (name, content) in _fx.Files.Where(f => !f.Key.Contains('/')))
        {
            Assert.Equal(OriginEntryKind.File, entries[name].Kind);
            // Apache rounds sizes from 1 KiB up ("1.9K"); those must come back unknown, not wrong.
            long expectedSize = exactSizes || (mode != "apache-list" && content.Length < 1024) ? content.Length : -1;
            Assert.Equal(expectedSize, entries[name].Size);
        }
        if (mode != "apache-list")
            Assert.NotNull(entries["plain.bin"].Modified);

        var inner = await ListAllAsync(origin, "sub dir");
        Assert.Equal(["deeper", "inner.bin"], inner.Select(e => e.Name).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("nginx")]
    [InlineData("json")]
    [InlineData("apache")]
    [InlineData("apache-table")]
    [InlineData("apache-list")]
    public async Task OddNames_ListStatRead_RoundTrip(string mode)
    {
        using var origin = Create(mode);
        var listed = (await ListAllAsync(origin, "")).Select(e => e.Name).ToHashSet();
        foreach (string name in HttpServerFixture.OddNames)
        {
            Assert.Contains(name, listed);
            var obj = await origin.StatAsync(name, Ct);
            var buffer = new byte[obj.Size];
            Assert.Equal(buffer.Length, await origin.ReadAsync(obj, 0, buffer, Ct));
            Assert.Equal(_fx.Files[name], buffer);
        }
        var deep = await origin.StatAsync("sub dir/deeper/x.bin", Ct);
        Assert.Equal(10, deep.Size);
    }

    [Fact]
    public async Task List_LargeDirectory_PagedFromOneFetch()
    {
        using var origin = Create("nginx");
        int before = _fx.Server.Count("nginx");
        var pages = new List<int>();
        var names = new List<string>();
        string? token = null;
        do
        {
            var page = await origin.ListAsync("many", token, Ct);
            pages.Add(page.Entries.Count);
            names.AddRange(page.Entries.Select(e => e.Name));
            token = page.ContinuationToken;
        }
        while (token is not null);

        Assert.Equal([1000, HttpServerFixture.ManyCount - 1000], pages);
        Assert.Equal(Enumerable.Range(0, HttpServerFixture.ManyCount).Select(i => $"item-{i:D5}"), names);
        Assert.Equal(1, _fx.Server.Count("nginx") - before);
    }

    [Theory]
    [InlineData("nginx", 0, 200_000)]
    [InlineData("nginx", 1, 3)]
    [InlineData("nginx", 65_535, 70_001)]
    [InlineData("nginx", 199_999, 10)]
    [InlineData("norange", 123_457, 5000)]
    [InlineData("norange", 0, 17)]
    [InlineData("noetag", 777, 1234)]
    [InlineData("shortrange", 999, 4321)]
    [InlineData("nohead", 5, 50)]
    [InlineData("noifmatch", 150_000, 60_000)]
    [InlineData("weaketag", 3, 100_000)]
    [InlineData("widerange", 4097, 5000)]
    [InlineData("widerange", 199_000, 1000)]
    public async Task Read_Ranges_ExactBytes(string mode, long offset, int length)
    {
        using var origin = Create(mode);
        byte[] content = _fx.Files["plain.bin"];
        var obj = await origin.StatAsync("plain.bin", Ct);
        Assert.Equal(content.Length, obj.Size);

        var buffer = new byte[length];
        int n = await origin.ReadAsync(obj, offset, buffer, Ct);

        int expected = (int)Math.Min(length, content.Length - offset);
        Assert.Equal(expected, n);
        Assert.Equal(content.AsSpan((int)offset, expected).ToArray(), buffer.AsSpan(0, n).ToArray());
    }

    [Fact]
    public async Task Read_ServerReturnsShortRanges_LoopsUntilDone()
    {
        using var origin = Create("shortrange");
        var obj = await origin.StatAsync("plain.bin", Ct);
        int before = _fx.Server.Count("shortrange");
        var buffer = new byte[4500];
        Assert.Equal(4500, await origin.ReadAsync(obj, 10, buffer, Ct));
        Assert.Equal(_fx.Files["plain.bin"].AsSpan(10, 4500).ToArray(), buffer);
        Assert.Equal(5, _fx.Server.Count("shortrange") - before); // 1000 bytes per answer
    }

    [Fact]
    public async Task Stat_VersionIsETagOrLastModified()
    {
        using var withETag = Create("nginx");
        using var withoutETag = Create("noetag");
        var a = await withETag.StatAsync("small.txt", Ct);
        var b = await withoutETag.StatAsync("small.txt", Ct);
        Assert.StartsWith("\"", a.Version);
        Assert.StartsWith("lm:", b.Version);
        Assert.Equal(100, a.Size);
        Assert.Equal(100, b.Size);
    }

    [Theory]
    [InlineData("nginx", 4096)]        // 206: a prefix
    [InlineData("nginx", 300_000)]     // 206: the whole file, the buffer is larger
    [InlineData("noetag", 4096)]       // version from Last-Modified + length
    [InlineData("norange", 4096)]      // 200 (Range ignored): only the prefix is read
    [InlineData("norange", 300_000)]
    [InlineData("widerange", 5000)]    // a 206 wider than asked
    public async Task StatAndRead_OneGet_SameObjectAsStatAndTheFirstBytes(string mode, int bufferLength)
    {
        using var origin = Create(mode);
        byte[] content = _fx.Files["plain.bin"];
        OriginObject stat = await origin.StatAsync("plain.bin", Ct);
        int headsBefore = _fx.Server.Count(mode, "HEAD");
        int getsBefore = _fx.Server.Count(mode);

        var buffer = new byte[bufferLength];
        (OriginObject obj, int read) = await origin.StatAndReadAsync("plain.bin", buffer, Ct);

        Assert.Equal(stat, obj);
        int expected = Math.Min(bufferLength, content.Length);
        Assert.Equal(expected, read);
        Assert.Equal(content.AsSpan(0, expected).ToArray(), buffer.AsSpan(0, read).ToArray());
        Assert.Equal(0, _fx.Server.Count(mode, "HEAD") - headsBefore);
        Assert.Equal(1, _fx.Server.Count(mode) - getsBefore);
    }

    [Fact]
    public async Task Stat_ServerWithoutHead_FallsBackToOneRangedGet_EvenForAnEmptyFile()
    {
        using var origin = Create("nohead");
        using var withHead = Create("nginx");
        int getsBefore = _fx.Server.Count("nohead");
        OriginObject plain = await origin.StatAsync("plain.bin", Ct);
        Assert.Equal(_fx.Files["plain.bin"].Length, plain.Size);
        Assert.Equal((await withHead.StatAsync("plain.bin", Ct)).Version, plain.Version);
        // Byte 0 of an empty file is past its end: 416 with the length 0, which is a size, not an error.
        Assert.Equal(0, (await origin.StatAsync("empty.bin", Ct)).Size);
        Assert.Equal(2, _fx.Server.Count("nohead") - getsBefore);
    }

    [Fact]
    public async Task StatAndRead_EmptyDirectoryMissing()
    {
        using var origin = Create("nginx");
        (OriginObject empty, int read) = await origin.StatAndReadAsync("empty.bin", new byte[100], Ct);
        Assert.Equal(0, empty.Size);
        Assert.Equal(0, read);
        Assert.Equal((await origin.StatAsync("empty.bin", Ct)).Version, empty.Version);
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.StatAndReadAsync("sub dir", new byte[100], Ct));
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.StatAndReadAsync("missing.bin", new byte[100], Ct));
    }

    [Fact]
    public async Task Stat_EmptyFileAndDirectoryAndMissing()
    {
        using var origin = Create("nginx");
        var empty = await origin.StatAsync("empty.bin", Ct);
        Assert.Equal(0, empty.Size);
        Assert.Equal(0, await origin.ReadAsync(empty, 0, new byte[10], Ct));
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.StatAsync("sub dir", Ct));
        int before = _fx.Server.Count("nginx", "HEAD");
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.StatAsync("missing.bin", Ct));
        Assert.Equal(1, _fx.Server.Count("nginx", "HEAD") - before); // 404 is not retried
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.ListAsync("missing-dir", null, Ct));
    }

    [Theory]
    [InlineData("nginx")]      // If-Match -> 412
    [InlineData("noifmatch")]  // 206 with the new ETag
    [InlineData("norange")]    // 200 with the new ETag
    [InlineData("noetag")]     // If-Unmodified-Since -> 412
    [InlineData("weaketag")]   // weak ETag: no If-Match (strong comparison), caught on the response
    public async Task Read_ObjectChangedAfterStat_ObjectChangedException(string mode)
    {
        string name = $"changing-{mode}.bin";
        string path = Path.Join(_fx.Root, name);
        File.WriteAllBytes(path, TestData.Bytes(5000, 40));
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(-10));
        using var origin = Create(mode);
        var obj = await origin.StatAsync(name, Ct);

        File.WriteAllBytes(path, TestData.Bytes(5000, 41)); // same size, new mtime
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow);

        await Assert.ThrowsAsync<OriginObjectChangedException>(() => origin.ReadAsync(obj, 100, new byte[1000], Ct));
        var fresh = await origin.StatAsync(name, Ct);
        Assert.NotEqual(obj.Version, fresh.Version);
        var buffer = new byte[1000];
        await origin.ReadAsync(fresh, 100, buffer, Ct);
        Assert.Equal(TestData.Bytes(5000, 41).AsSpan(100, 1000).ToArray(), buffer);
    }

    [Fact]
    public async Task Read_ObjectTruncatedAfterStat_ObjectChangedException()
    {
        string path = Path.Join(_fx.Root, "shrinking.bin");
        File.WriteAllBytes(path, TestData.Bytes(5000, 42));
        using var origin = Create("noifmatch");
        var obj = await origin.StatAsync("shrinking.bin", Ct);
        File.WriteAllBytes(path, TestData.Bytes(100, 43));
        await Assert.ThrowsAsync<OriginObjectChangedException>(() => origin.ReadAsync(obj, 4000, new byte[1000], Ct));
    }

    [Fact]
    public async Task Flaky_503ThenOk_Retried()
    {
        using var origin = Create("flaky");
        _fx.Server.FailuresLeft = 0;
        var obj = await origin.StatAsync("small.txt", Ct);
        int before = _fx.Server.Count("flaky");
        _fx.Server.FailuresLeft = 2;

        var buffer = new byte[100];
        Assert.Equal(100, await origin.ReadAsync(obj, 0, buffer, Ct));

        Assert.Equal(_fx.Files["small.txt"], buffer);
        Assert.Equal(3, _fx.Server.Count("flaky") - before);
    }

    [Fact]
    public async Task Flaky_Always503_UnavailableAfterBoundedAttempts()
    {
        using var origin = Create("flaky");
        _fx.Server.FailuresLeft = 1000;
        try
        {
            int before = _fx.Server.Count("flaky", "HEAD");
            var e = await Assert.ThrowsAsync<OriginUnavailableException>(() => origin.StatAsync("small.txt", Ct));
            Assert.Equal(FastRetries.MaxRetries + 1, _fx.Server.Count("flaky", "HEAD") - before);
            Assert.Contains("503", e.Message);
        }
        finally
        {
            _fx.Server.FailuresLeft = 0;
        }
    }

    [Fact]
    public async Task CompressedDespiteIdentity_RefusedNotMisread()
    {
        using var origin = Create("gzipforced");
        var e = await Assert.ThrowsAsync<OriginException>(() => origin.StatAsync("small.txt", Ct));
        Assert.Contains("Content-Encoding", e.Message);
        var forged = new OriginObject("small.txt", 100, "W/\"x\"", null);
        await Assert.ThrowsAsync<OriginException>(() => origin.ReadAsync(forged, 0, new byte[10], Ct));
    }

    [Fact]
    public async Task Forbidden_AccessDenied_NotRetried()
    {
        using var origin = Create("forbidden");
        int before = _fx.Server.Count("forbidden", "HEAD");
        await Assert.ThrowsAsync<OriginAccessDeniedException>(() => origin.StatAsync("small.txt", Ct));
        Assert.Equal(1, _fx.Server.Count("forbidden", "HEAD") - before);
    }

    [Fact]
    public async Task BasicAuth_FromSecrets_SentAndNeverInMessages()
    {
        _fx.Server.RequiredAuthorization = "Basic " + Convert.ToBase64String("reader:s3cr3t-pa55"u8.ToArray());
        var secrets = new Dictionary<string, string> { ["username"] = "reader", ["password"] = "s3cr3t-pa55" };
        using (var ok = Create("auth", secrets: secrets))
        {
            var obj = await ok.StatAsync("small.txt", Ct);
            Assert.Equal(100, obj.Size);
            Assert.Contains("small.txt", (await ok.ListAsync("", null, Ct)).Entries.Select(e => e.Name));
        }
        var wrong = new Dictionary<string, string> { ["username"] = "reader", ["password"] = "wr0ng-pa55" };
        using var bad = Create("auth", secrets: wrong);
        var e = await Assert.ThrowsAsync<OriginAccessDeniedException>(() => bad.StatAsync("small.txt", Ct));
        Assert.DoesNotContain("wr0ng-pa55", e.ToString());
        Assert.DoesNotContain(Convert.ToBase64String("reader:wr0ng-pa55"u8.ToArray()), e.ToString());
    }

    [Fact]
    public async Task SingleFileUrl_RootListsOnlyThatFile()
    {
        using var origin = Create("nginx", Uri.EscapeDataString("with space.bin"));
        var page = await origin.ListAsync("", null, Ct);
        var entry = Assert.Single(page.Entries);
        Assert.Equal("with space.bin", entry.Name);
        Assert.Equal(_fx.Files["with space.bin"].Length, entry.Size);
        Assert.NotNull(entry.Version);
        var obj = await origin.StatAsync("with space.bin", Ct);
        var buffer = new byte[obj.Size];
        await origin.ReadAsync(obj, 0, buffer, Ct);
        Assert.Equal(_fx.Files["with space.bin"], buffer);
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.StatAsync("small.txt", Ct));
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.ListAsync("sub dir", null, Ct));
    }

    [Fact]
    public async Task DeadPort_ConnectionRefused_UnavailableWithinBound()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now: connections are refused

        var options = FastRetries with { RequestTimeout = TimeSpan.FromSeconds(2), MaxRetries = 2 };
        using var origin = OriginFactory.Create(DatasetSource.Parse($"http://127.0.0.1:{port}/data/", TestData.NoParameters), null, options);
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<OriginUnavailableException>(() => origin.StatAsync("x.bin", Ct));
        sw.Stop();

        Assert.Contains("connection refused", e.Message);
        Assert.Contains("3 attempts", e.Message);
        Assert.True(sw.Elapsed < Bound(options), $"took {sw.Elapsed}");
    }

    [Fact]
    public async Task BlackHole_NeverAnswers_TimeoutWithinBound()
    {
        // Accepts connections and reads nothing, answers nothing.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepted = new List<Socket>();
        using var stop = new CancellationTokenSource();
        var acceptLoop = Task.Run(async () =>
        {
            try
            {
                while (true)
                    accepted.Add(await listener.AcceptSocketAsync(stop.Token));
            }
            catch (OperationCanceledException)
            {
            }
        }, Ct);
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            var options = FastRetries with { RequestTimeout = TimeSpan.FromMilliseconds(400), MaxRetries = 2 };
            using var origin = OriginFactory.Create(DatasetSource.Parse($"http://127.0.0.1:{port}/data/", TestData.NoParameters), null, options);
            var sw = Stopwatch.StartNew();
            var e = await Assert.ThrowsAsync<OriginUnavailableException>(() => origin.ListAsync("", null, Ct));
            sw.Stop();

            Assert.Contains("no answer within", e.Message);
            Assert.True(sw.Elapsed >= options.RequestTimeout * 3, $"gave up early: {sw.Elapsed}");
            Assert.True(sw.Elapsed < Bound(options), $"took {sw.Elapsed}");
        }
        finally
        {
            await stop.CancelAsync();
            await acceptLoop;
            listener.Stop();
            foreach (var s in accepted)
                s.Dispose();
        }
    }

    [Fact]
    public async Task Cancellation_ByCaller_IsNotReportedAsUnavailable()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(); // accepts into the backlog, never answers
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            using var origin = OriginFactory.Create(DatasetSource.Parse($"http://127.0.0.1:{port}/data/", TestData.NoParameters), null, FastRetries);
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => origin.StatAsync("x", cts.Token));
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>The documented bound, plus slack for a loaded CI machine.</summary>
    private static TimeSpan Bound(OriginOptions o) =>
        (o.RequestTimeout * (o.MaxRetries + 1)) + (o.RetryMaxDelay * o.MaxRetries) + TimeSpan.FromSeconds(3);
}
