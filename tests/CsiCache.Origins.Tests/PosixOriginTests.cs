namespace CsiCache.Origins.Tests;

using CsiCache.Origins.Posix;

/// <summary>Containment by openat2(RESOLVE_BENEATH), the normal path on Linux 5.6+.</summary>
public sealed class PosixOriginOpenat2Tests : PosixOriginTests
{
    protected override bool AllowOpenat2 => true;
}

/// <summary>The same behaviour through the realpath fallback (kernels or seccomp profiles without openat2).</summary>
public sealed class PosixOriginRealpathFallbackTests : PosixOriginTests
{
    protected override bool AllowOpenat2 => false;
}

public abstract class PosixOriginTests : IDisposable
{
    protected abstract bool AllowOpenat2 { get; }

    private readonly TempDir _dir = new();
    private readonly TempDir _outside = new();

    public void Dispose()
    {
        _dir.Dispose();
        _outside.Dispose();
    }

    private IOrigin Create(int pageSize = 1000, string subPath = "")
    {
        var parameters = new Dictionary<string, string>();
        if (subPath.Length > 0)
            parameters["subPath"] = subPath;
        var source = DatasetSource.Parse("file://" + _dir.Path, parameters);
        var options = new OriginOptions { ListPageSize = pageSize };
        return AllowOpenat2 ? OriginFactory.Create(source, null, options) : new PosixOrigin(source, options, allowOpenat2: false);
    }

    private static async Task<List<OriginEntry>> ListAllAsync(IOrigin origin, string dir, List<int>? pageSizes = null)
    {
        var all = new List<OriginEntry>();
        string? token = null;
        do
        {
            var page = await origin.ListAsync(dir, token, TestContext.Current.CancellationToken);
            pageSizes?.Add(page.Entries.Count);
            all.AddRange(page.Entries);
            token = page.ContinuationToken;
        }
        while (token is not null);
        return all;
    }

    [Fact]
    public async Task List_ManyEntries_PagedInNameOrderWithoutGapsOrDuplicates()
    {
        var expected = new List<string>();
        for (int i = 0; i < 257; i++)
        {
            string name = $"f{i * 7919 % 1000:D4}-{i}";
            _dir.Write(name, [(byte)i]);
            expected.Add(name);
        }
        expected.Sort(StringComparer.Ordinal);
        using var origin = Create(pageSize: 50);

        var pageSizes = new List<int>();
        var all = await ListAllAsync(origin, "", pageSizes);

        Assert.Equal(expected, all.Select(e => e.Name));
        Assert.Equal([50, 50, 50, 50, 50, 7], pageSizes);
        Assert.All(all, e => Assert.Equal(OriginEntryKind.File, e.Kind));
        Assert.All(all, e => Assert.Equal(1, e.Size));
    }

    [Fact]
    public async Task List_ExactlyOnePageFull_NoEmptyTrailingPage()
    {
        for (int i = 0; i < 10; i++)
            _dir.Write($"n{i}", []);
        using var origin = Create(pageSize: 10);
        var page = await origin.ListAsync("", null, TestContext.Current.CancellationToken);
        Assert.Equal(10, page.Entries.Count);
        Assert.Null(page.ContinuationToken);
    }

    [Fact]
    public async Task List_KindsSizesAndVersions()
    {
        _dir.Write("dir/inner.txt", TestData.Bytes(5, 1));
        _dir.Write("file.bin", TestData.Bytes(1234, 2));
        File.CreateSymbolicLink(Path.Join(_dir.Path, "link"), "file.bin");
        using var origin = Create();

        var entries = (await origin.ListAsync("", null, TestContext.Current.CancellationToken)).Entries.ToDictionary(e => e.Name);

        Assert.Equal(OriginEntryKind.Directory, entries["dir"].Kind);
        Assert.Equal(OriginEntryKind.File, entries["file.bin"].Kind);
        Assert.Equal(1234, entries["file.bin"].Size);
        Assert.Equal(OriginEntryKind.Symlink, entries["link"].Kind);
        Assert.Equal("file.bin".Length, entries["link"].Size);
        var stat = await origin.StatAsync("file.bin", TestContext.Current.CancellationToken);
        Assert.Equal(stat.Version, entries["file.bin"].Version);
        Assert.Equal(File.GetLastWriteTimeUtc(Path.Join(_dir.Path, "file.bin")), entries["file.bin"].Modified!.Value.UtcDateTime);

        var inner = await origin.ListAsync("dir", null, TestContext.Current.CancellationToken);
        Assert.Equal("inner.txt", Assert.Single(inner.Entries).Name);
    }

    [Fact]
    public async Task List_MissingOrFile_NotFound()
    {
        _dir.Write("file.bin", [1]);
        using var origin = Create();
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.ListAsync("nope", null, TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.ListAsync("file.bin", null, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Stat_MissingDirectoryOrFile()
    {
        _dir.Write("d/x", [1]);
        using var origin = Create();
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.StatAsync("missing", TestContext.Current.CancellationToken));
        var e = await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.StatAsync("d", TestContext.Current.CancellationToken));
        Assert.Contains("directory", e.Message);
        var x = await origin.StatAsync("d/x", TestContext.Current.CancellationToken);
        Assert.Equal("d/x", x.Path);
        Assert.Equal(1, x.Size);
    }

    [Theory]
    [InlineData(0, 100)]
    [InlineData(1, 1)]
    [InlineData(4095, 4097)]
    [InlineData(12345, 65536)]
    [InlineData(199_990, 100)] // past the end: a short read of what is left
    [InlineData(200_000, 10)]  // at the end: nothing
    public async Task Read_OddOffsets_ReturnsExactBytes(long offset, int length)
    {
        byte[] content = TestData.Bytes(200_000, 3);
        _dir.Write("sub/data.bin", content);
        using var origin = Create();
        var obj = await origin.StatAsync("sub/data.bin", TestContext.Current.CancellationToken);

        var buffer = new byte[length];
        int n = await origin.ReadAsync(obj, offset, buffer, TestContext.Current.CancellationToken);

        int expected = (int)Math.Min(length, content.Length - offset);
        Assert.Equal(expected, n);
        Assert.Equal(content.AsSpan((int)offset, expected).ToArray(), buffer.AsSpan(0, n).ToArray());
    }

    [Fact]
    public async Task Read_PastEnd_Throws()
    {
        _dir.Write("a", [1, 2, 3]);
        using var origin = Create();
        var obj = await origin.StatAsync("a", TestContext.Current.CancellationToken);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => origin.ReadAsync(obj, 4, new byte[1], TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Version_FileRewrittenInPlace_ChangesAndReadRefuses()
    {
        string path = _dir.Write("v.bin", TestData.Bytes(4096, 4));
        using var origin = Create();
        var before = await origin.StatAsync("v.bin", TestContext.Current.CancellationToken);

        // Same size, new bytes, written in place (same inode): only mtime tells.
        File.WriteAllBytes(path, TestData.Bytes(4096, 5));
        File.SetLastWriteTimeUtc(path, before.Modified!.Value.UtcDateTime.AddSeconds(1));
        var after = await origin.StatAsync("v.bin", TestContext.Current.CancellationToken);

        Assert.NotEqual(before.Version, after.Version);
        await Assert.ThrowsAsync<OriginObjectChangedException>(() => origin.ReadAsync(before, 0, new byte[10], TestContext.Current.CancellationToken));
        var buffer = new byte[10];
        Assert.Equal(10, await origin.ReadAsync(after, 0, buffer, TestContext.Current.CancellationToken));
        Assert.Equal(TestData.Bytes(4096, 5).AsSpan(0, 10).ToArray(), buffer);
    }

    [Fact]
    public async Task Version_FileReplacedByRenameWithSameSizeAndMtime_Changes()
    {
        string path = _dir.Write("r.bin", TestData.Bytes(100, 6));
        using var origin = Create();
        var before = await origin.StatAsync("r.bin", TestContext.Current.CancellationToken);
        string tmp = _dir.Write("r.tmp", TestData.Bytes(100, 7));
        File.SetLastWriteTimeUtc(tmp, File.GetLastWriteTimeUtc(path));
        File.Move(tmp, path, overwrite: true);

        var after = await origin.StatAsync("r.bin", TestContext.Current.CancellationToken);

        Assert.Equal(before.Size, after.Size);
        Assert.Equal(before.Modified, after.Modified);
        Assert.NotEqual(before.Version, after.Version); // the inode differs
        await Assert.ThrowsAsync<OriginObjectChangedException>(() => origin.ReadAsync(before, 0, new byte[10], TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Symlinks_ReadLinkAndFollowInsideRoot()
    {
        byte[] content = TestData.Bytes(300, 8);
        _dir.Write("real/target.bin", content);
        File.CreateSymbolicLink(Path.Join(_dir.Path, "rel-link"), "real/target.bin");
        Directory.CreateSymbolicLink(Path.Join(_dir.Path, "dir-link"), "real");
        using var origin = Create();

        Assert.Equal("real/target.bin", await origin.ReadLinkAsync("rel-link", TestContext.Current.CancellationToken));
        Assert.Equal("real", await origin.ReadLinkAsync("dir-link", TestContext.Current.CancellationToken));
        Assert.Null(await origin.ReadLinkAsync("real/target.bin", TestContext.Current.CancellationToken));

        var viaLink = await origin.StatAsync("dir-link/target.bin", TestContext.Current.CancellationToken);
        var buffer = new byte[300];
        Assert.Equal(300, await origin.ReadAsync(viaLink, 0, buffer, TestContext.Current.CancellationToken));
        Assert.Equal(content, buffer);
        var listed = await origin.ListAsync("dir-link", null, TestContext.Current.CancellationToken);
        Assert.Equal("target.bin", Assert.Single(listed.Entries).Name);
    }

    [Fact]
    public async Task Symlinks_LeadingOutsideRoot_AccessDenied()
    {
        _outside.Write("secret.txt", "node secret"u8.ToArray());
        File.CreateSymbolicLink(Path.Join(_dir.Path, "escape"), Path.Join(_outside.Path, "secret.txt"));
        File.CreateSymbolicLink(Path.Join(_dir.Path, "escape-rel"), "../" + Path.GetFileName(_outside.Path) + "/secret.txt");
        Directory.CreateSymbolicLink(Path.Join(_dir.Path, "escape-dir"), _outside.Path);
        using var origin = Create();

        // The link itself is listed and readable as a link; following it is refused.
        Assert.Equal(Path.Join(_outside.Path, "secret.txt"), await origin.ReadLinkAsync("escape", TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<OriginAccessDeniedException>(() => origin.StatAsync("escape", TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<OriginAccessDeniedException>(() => origin.StatAsync("escape-rel", TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<OriginAccessDeniedException>(() => origin.StatAsync("escape-dir/secret.txt", TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<OriginAccessDeniedException>(() => origin.ListAsync("escape-dir", null, TestContext.Current.CancellationToken));
        var forged = new OriginObject("escape", 11, "x", null);
        await Assert.ThrowsAsync<OriginAccessDeniedException>(() => origin.ReadAsync(forged, 0, new byte[11], TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Containment_MechanismIsTheExpectedOne()
    {
        _dir.Write("real/x", [1]);
        Directory.CreateSymbolicLink(Path.Join(_dir.Path, "in"), "real");
        File.CreateSymbolicLink(Path.Join(_dir.Path, "out"), "/etc/hostname");
        using var origin = Create();
        await origin.StatAsync("in/x", TestContext.Current.CancellationToken);
        await Assert.ThrowsAsync<OriginAccessDeniedException>(() => origin.StatAsync("out", TestContext.Current.CancellationToken));
        // This kernel has openat2: the normal path must not have fallen back silently.
        Assert.Equal(AllowOpenat2, ((PosixOrigin)origin).UsesOpenat2);
    }

    [Fact]
    public async Task Fifo_NotListedNotOpened()
    {
        string fifo = Path.Join(_dir.Path, "pipe");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", fifo))
        {
            await mkfifo.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.Equal(0, mkfifo.ExitCode);
        }
        Assert.True(Path.Exists(fifo));
        using var origin = Create();
        var page = await origin.ListAsync("", null, TestContext.Current.CancellationToken);
        Assert.DoesNotContain(page.Entries, e => e.Name == "pipe");
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.StatAsync("pipe", TestContext.Current.CancellationToken));
        // A forged object for the fifo must fail, not block forever on open(2).
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.ReadAsync(new OriginObject("pipe", 1, "x", null), 0, new byte[1], TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task SubPath_RootsTheOrigin()
    {
        _dir.Write("a/b/c.txt", [42]);
        using var origin = Create(subPath: "a/b");
        var obj = await origin.StatAsync("c.txt", TestContext.Current.CancellationToken);
        Assert.Equal(1, obj.Size);
    }

    [Theory]
    [InlineData("/abs")]
    [InlineData("a/../b")]
    [InlineData("a//b")]
    [InlineData("trailing/")]
    [InlineData("./x")]
    public async Task Paths_Malformed_ArgumentException(string path)
    {
        using var origin = Create();
        await Assert.ThrowsAnyAsync<ArgumentException>(() => origin.StatAsync(path, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Root_Missing_NotFound()
    {
        var source = DatasetSource.Parse("file://" + _dir.Path + "/does-not-exist", TestData.NoParameters);
        using var origin = OriginFactory.Create(source, null, new OriginOptions());
        await Assert.ThrowsAsync<OriginNotFoundException>(() => origin.ListAsync("", null, TestContext.Current.CancellationToken));
    }
}
