using System.Buffers.Binary;
using System.Text;
using CsiCache.Cache;
using CsiCache.Fuse;
using CsiCache.Fuse.Protocol;
using Microsoft.Extensions.Logging.Abstractions;

namespace CsiCache.Datasets.Tests;

/// <summary>
/// Zero-message opendirs on real mounts: an immutable mount answers the first OPENDIR with ENOSYS,
/// and the kernel then opens and closes directories without a request and sends READDIR with
/// handle 0, which is served by node id; refresh mounts keep OPENDIR. The FUSE layer's per-opcode
/// counters show what the kernel sent; FORGET counters show whether someone's drop_caches (this
/// machine is shared) evicted inodes meanwhile, which resets the kernel's listing cache.
/// </summary>
[Collection(MountCollection.Name)]
public sealed class ZeroMessageOpenDirTests
{
    private const int BigCount = 2500; // three origin pages of 1000, and dozens of READDIR replies

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task ImmutableMount_AfterTheFirstOpendir_NoOpendirOrReleasedirReachesTheServer_AndListingsAreExact()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        string[] directories = CreateTree(source.Path);
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path);
        DatasetFileSystem fs = test.Mount.FileSystem;
        FuseSession session = test.Mount.Session;
        Assert.True(session.NoOpendirSupported, "this kernel should offer FUSE_NO_OPENDIR_SUPPORT (7.29, Linux 5.1)");
        Assert.True(fs.ZeroMessageOpenDir);

        // First pass: every directory listed by the server (handle 0 after the first OPENDIR).
        foreach (string relative in directories)
        {
            Assert.Equal(Names(source.Path, relative), Names(test.MountPoint, relative));
        }
        long listed = ReadDirs(session);
        long forgets = Forgets(session);
        Assert.True(listed > BigCount / 100, $"the big directory should take many READDIRs; all took {listed}");

        // Second pass: the same, from the kernel's listing cache (FOPEN_CACHE_DIR is its default for
        // handle-0 opens), so not one request, unless a drop_caches evicted inodes meanwhile.
        foreach (string relative in directories)
        {
            Assert.Equal(Names(source.Path, relative), Names(test.MountPoint, relative));
        }
        if (Forgets(session) == forgets)
        {
            Assert.Equal(listed, ReadDirs(session));
        }

        // Concurrently: eight walkers, each in its own order, several times.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(w => Task.Run(() =>
        {
            for (int round = 0; round < 3; round++)
            {
                var order = new Random((w * 10) + round);
                foreach (string relative in directories.OrderBy(_ => order.Next()))
                {
                    Assert.Equal(Names(source.Path, relative), Names(test.MountPoint, relative));
                }
            }
        }, Ct)));

        // The whole tree as a recursive walk sees it, with attributes (READDIRPLUS fills them).
        Assert.Equal(TestData.Listing(source.Path), TestData.Listing(test.MountPoint));
        AssertSameAttributes(source.Path, test.MountPoint, "big");
        AssertSameAttributes(source.Path, test.MountPoint, "");
        Assert.True(session.RequestCount(FuseOpcode.ReadDirPlus) > 0);

        await Task.Delay(300, Ct); // RELEASEDIR would be sent in the background: give a stray one time to arrive
        Assert.Equal(1, session.RequestCount(FuseOpcode.OpenDir));    // the first opendir, answered ENOSYS
        Assert.Equal(0, session.RequestCount(FuseOpcode.ReleaseDir)); // none at all
        Assert.Equal(0, fs.OpenDirectories);
        if (Forgets(session) == 0)
        {
            Assert.Equal(directories.Length, fs.DirectoriesListedWithoutOpen); // one listing state per directory, however many READDIRs
        }
        else
        {
            Assert.InRange(fs.DirectoriesListedWithoutOpen, 1, directories.Length); // forgotten nodes dropped theirs
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task RefreshMount_KeepsOpendirAndReleasedir()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Directory.CreateDirectory(Path.Combine(source.Path, "d"));
        File.WriteAllBytes(Path.Combine(source.Path, "d", "a.bin"), [1]);
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path, new() { ["refresh"] = "1h" });
        Assert.False(test.Mount.FileSystem.ZeroMessageOpenDir);
        Assert.True(test.Mount.Session.NoOpendirSupported); // offered, but a refresh mount must see listings change

        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(["a.bin"], Names(test.MountPoint, "d"));
        }
        FuseSession session = test.Mount.Session;
        await WaitForAsync(() => session.RequestCount(FuseOpcode.ReleaseDir) >= 4);
        Assert.Equal(4, session.RequestCount(FuseOpcode.OpenDir));
        Assert.Equal(4, session.RequestCount(FuseOpcode.ReleaseDir));
        Assert.Equal(0, test.Mount.FileSystem.DirectoriesListedWithoutOpen);
    }

    [Fact(Timeout = 90_000)]
    public async Task PassthroughMount_StillDeclinesOpendir()
    {
        // Passthrough is for regular files; it needs OPEN, not OPENDIR.
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        Directory.CreateDirectory(Path.Combine(source.Path, "d"));
        File.WriteAllBytes(Path.Combine(source.Path, "d", "a.bin"), [1, 2]);
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path, passthrough: PassthroughMode.Always);
        Assert.True(test.Mount.FileSystem.ZeroMessageOpenDir);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(["a.bin"], Names(test.MountPoint, "d"));
            Assert.Equal(["d"], Names(test.MountPoint, ""));
        }
        await Task.Delay(300, Ct);
        Assert.Equal(1, test.Mount.Session.RequestCount(FuseOpcode.OpenDir));
        Assert.Equal(0, test.Mount.Session.RequestCount(FuseOpcode.ReleaseDir));
    }

    /// <summary>
    /// A small tree: a big directory (several origin pages, many READDIR replies, names of varying
    /// length), an empty one, nesting, and a directory of files and directories. Returns every
    /// directory, relative ("" is the root).
    /// </summary>
    private static string[] CreateTree(string root)
    {
        string big = Path.Combine(root, "big");
        Directory.CreateDirectory(big);
        for (int i = 0; i < BigCount; i++)
        {
            File.WriteAllBytes(Path.Combine(big, $"f-{i:D5}{new string('n', i % 41)}.bin"), new byte[i % 17]);
        }
        Directory.CreateDirectory(Path.Combine(root, "empty"));
        Directory.CreateDirectory(Path.Combine(root, "a", "b", "c"));
        File.WriteAllBytes(Path.Combine(root, "a", "b", "c", "deep.txt"), [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(root, "a", "top.txt"), new byte[1000]);
        for (int i = 0; i < 20; i++)
        {
            Directory.CreateDirectory(Path.Combine(root, "mixed", $"dir-{i}"));
            File.WriteAllBytes(Path.Combine(root, "mixed", $"file-{i}"), new byte[i]);
        }
        File.WriteAllBytes(Path.Combine(root, "root.txt"), [9]);
        return ["", "big", "empty", "a", "a/b", "a/b/c", "mixed", .. Enumerable.Range(0, 20).Select(i => $"mixed/dir-{i}")];
    }

    private static string[] Names(string root, string relative) =>
        [.. Directory.EnumerateFileSystemEntries(Path.Combine(root, relative)).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];

    private static void AssertSameAttributes(string source, string mount, string relative)
    {
        var expected = new DirectoryInfo(Path.Combine(source, relative)).EnumerateFileSystemInfos().ToDictionary(i => i.Name, StringComparer.Ordinal);
        var actual = new DirectoryInfo(Path.Combine(mount, relative)).EnumerateFileSystemInfos().ToList();
        Assert.Equal(expected.Count, actual.Count);
        foreach (FileSystemInfo info in actual)
        {
            FileSystemInfo native = expected[info.Name];
            Assert.Equal(native is DirectoryInfo, info is DirectoryInfo);
            if (info is FileInfo file)
            {
                Assert.Equal(((FileInfo)native).Length, file.Length);
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead, file.UnixFileMode);
            }
            else
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute
                    | UnixFileMode.OtherRead | UnixFileMode.OtherExecute, info.UnixFileMode);
            }
            Assert.True((native.LastWriteTimeUtc - info.LastWriteTimeUtc).Duration() < TimeSpan.FromMilliseconds(1),
                $"{info.Name}: mtime {info.LastWriteTimeUtc:O} against {native.LastWriteTimeUtc:O}");
        }
    }

    private static long ReadDirs(FuseSession session) =>
        session.RequestCount(FuseOpcode.ReadDir) + session.RequestCount(FuseOpcode.ReadDirPlus);

    /// <summary>FORGETs the kernel sent: nonzero after someone's drop_caches (this machine is shared) or memory pressure.</summary>
    private static long Forgets(FuseSession session) =>
        session.RequestCount(FuseOpcode.Forget) + session.RequestCount(FuseOpcode.BatchForget);

    private static async Task WaitForAsync(Func<bool> condition)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, Ct);
        }
    }
}

/// <summary>Handle-0 READDIRs without a mount: keyed by node, never mixed up, paged from any cookie, concurrent, gone with FORGET.</summary>
public sealed class SharedListingTests : IDisposable
{
    private readonly TempDirectory _temp = new("noopendir");
    private readonly ChunkCache _cache;

    public SharedListingTests()
    {
        _cache = new ChunkCache(new ChunkCacheOptions { RootDirectory = _temp.Path, QuotaBytes = 64 << 20, ChunkSize = 1 << 20, FlushToDisk = false });
    }

    public void Dispose()
    {
        _cache.Dispose();
        _temp.Dispose();
    }

    private const int DirentHead = 24;       // fuse_dirent: ino, off, namelen, type
    private const int EntryOutSize = 128;    // fuse_entry_out before each fuse_dirent in READDIRPLUS

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void HandleZeroReadDirs_OfTwoDirectories_Interleaved_NeverMix()
    {
        (DatasetFileSystem fs, InMemoryOrigin origin) = Create(out string[] aNames, out string[] bNames);
        ulong a = LookupId(fs, "a");
        ulong b = LookupId(fs, "b");

        // Both listed a few entries at a time, alternately, each continuing from its own last cookie
        // with the same handle 0: the state is the node's, not the handle's.
        var seenA = new List<string>();
        var seenB = new List<string>();
        ulong offsetA = 0, offsetB = 0;
        bool doneA = false, doneB = false;
        while (!doneA || !doneB)
        {
            if (!doneA)
            {
                doneA = ReadPage(fs, a, ref offsetA, 200, plus: false, seenA, out _);
            }
            if (!doneB)
            {
                doneB = ReadPage(fs, b, ref offsetB, 200, plus: true, seenB, out _);
            }
        }
        Assert.Equal([".", "..", .. aNames], seenA);
        Assert.Equal([".", "..", .. bNames], seenB);
        Assert.Equal(2, fs.DirectoriesListedWithoutOpen);
        Assert.Equal(0, fs.OpenDirectories);

        // A READDIR from any cookie of a complete listing continues it, with no origin request.
        int lists = origin.ListCalls;
        var tail = new List<string>();
        ulong offset = 3 + 40; // after child 40
        while (!ReadPage(fs, a, ref offset, 4096, plus: false, tail, out _))
        {
        }
        Assert.Equal(aNames[41..], tail);
        Assert.Equal(lists, origin.ListCalls);
    }

    [Fact]
    public async Task HandleZeroReadDirs_Concurrent_FirstReadersAgreeOnOneListing_AndEachGetsItsDirectoryExactly()
    {
        (DatasetFileSystem fs, _) = Create(out string[] aNames, out string[] bNames);
        ulong a = LookupId(fs, "a");
        ulong b = LookupId(fs, "b");
        using var start = new Barrier(8);
        List<string>[] results = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() =>
        {
            start.SignalAndWait(TimeSpan.FromSeconds(10), Ct);
            var seen = new List<string>();
            ulong offset = 0;
            while (!ReadPage(fs, i % 2 == 0 ? a : b, ref offset, 200 + (i * 37), plus: i % 4 < 2, seen, out _))
            {
            }
            return seen;
        }, Ct)));
        for (int i = 0; i < results.Length; i++)
        {
            Assert.Equal([".", "..", .. i % 2 == 0 ? aNames : bNames], results[i]);
        }
        Assert.Equal(2, fs.DirectoriesListedWithoutOpen);
    }

    [Fact]
    public void HandleZeroReadDirPlus_CarriesEachEntrysNodeAndAttributes_AndTheStateGoesWithForget()
    {
        (DatasetFileSystem fs, _) = Create(out _, out string[] bNames);
        ulong b = LookupId(fs, "b");
        var seen = new List<string>();
        ulong offset = 0;
        var entries = new List<(string Name, ulong NodeId, ulong Size)>();
        while (!ReadPage(fs, b, ref offset, 4096, plus: true, seen, out var page))
        {
            entries.AddRange(page);
        }
        foreach ((string name, ulong nodeId, ulong size) in entries.Where(e => e.Name is not "." and not ".."))
        {
            Assert.Equal(Errno.Ok, fs.Lookup(b, Encoding.UTF8.GetBytes(name), out FuseEntry looked));
            Assert.Equal(looked.NodeId, nodeId);
            Assert.Equal((ulong)(100 + int.Parse(name.AsSpan(2, 3), provider: System.Globalization.CultureInfo.InvariantCulture)), size);
        }
        Assert.Equal(bNames.Length, entries.Count(e => e.Name is not "." and not ".."));

        Assert.Equal(1, fs.DirectoriesListedWithoutOpen);
        fs.Forget(b, 1); // the kernel's one lookup of "b": its inode is gone, and the listing state with it
        Assert.Equal(0, fs.DirectoriesListedWithoutOpen);
        var again = new List<string>();
        offset = 0;
        while (!ReadPage(fs, b, ref offset, 4096, plus: false, again, out _))
        {
        }
        Assert.Equal([".", "..", .. bNames], again);
        Assert.Equal(1, fs.DirectoriesListedWithoutOpen);
    }

    [Fact]
    public void HandleZeroReadDir_OfAFileOrAnUnknownNode_IsAnErrnoNotAState()
    {
        (DatasetFileSystem fs, _) = Create(out _, out _);
        ulong file = LookupId(fs, "top.bin");
        byte[] buffer = new byte[4096];
        var writer = new DirectoryWriter(buffer, plus: false);
        Assert.Equal(Errno.ENOTDIR, fs.ReadDir(file, 0, 0, ref writer));
        writer = new DirectoryWriter(buffer, plus: false);
        Assert.Equal(Errno.ESTALE, fs.ReadDir(0xdead_beef, 0, 0, ref writer));
        Assert.Equal(0, fs.DirectoriesListedWithoutOpen);
    }

    /// <summary>One READDIR of <paramref name="node"/> with handle 0 into a buffer of <paramref name="size"/>; true at the end.</summary>
    private static bool ReadPage(DatasetFileSystem fs, ulong node, ref ulong offset, int size, bool plus, List<string> names,
        out List<(string Name, ulong NodeId, ulong Size)> entries)
    {
        byte[] buffer = new byte[size];
        var writer = new DirectoryWriter(buffer, plus);
        Assert.Equal(Errno.Ok, fs.ReadDir(node, 0, offset, ref writer));
        entries = [];
        int at = 0;
        while (at < writer.Length)
        {
            ulong nodeId = 0, fileSize = 0;
            if (plus)
            {
                nodeId = BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(at));
                fileSize = BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(at + 40 + 8)); // fuse_attr: ino, size
                at += EntryOutSize;
            }
            offset = BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(at + 8));
            int nameLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(at + 16));
            string name = Encoding.UTF8.GetString(buffer, at + DirentHead, nameLength);
            names.Add(name);
            entries.Add((name, nodeId, fileSize));
            at += (DirentHead + nameLength + 7) & ~7;
        }
        return writer.Count == 0;
    }

    private static ulong LookupId(DatasetFileSystem fs, string name)
    {
        Assert.Equal(Errno.Ok, fs.Lookup(1, Encoding.UTF8.GetBytes(name), out FuseEntry entry));
        return entry.NodeId;
    }

    /// <summary>
    /// Two directories with disjoint names over a small origin page size (so listings grow page by
    /// page while being read), and a file. Names sort as listed (the origin lists in ordinal order).
    /// </summary>
    private (DatasetFileSystem Fs, InMemoryOrigin Origin) Create(out string[] aNames, out string[] bNames)
    {
        var origin = new InMemoryOrigin(pageSize: 7);
        aNames = [.. Enumerable.Range(0, 90).Select(i => $"a-{i:D3}{new string('x', i % 13)}")];
        bNames = [.. Enumerable.Range(0, 60).Select(i => $"b-{i:D3}")];
        foreach (string name in aNames)
        {
            origin.AddFile("a/" + name, 10);
        }
        for (int i = 0; i < bNames.Length; i++)
        {
            origin.AddFile("b/" + bNames[i], 100 + i);
        }
        origin.AddFile("top.bin", 5);
        var tree = new DatasetTree(origin, refresh: null);
        var reader = new ChunkReader(_cache, origin, new MountCounters(), prefetcher: null, 0, NullLogger.Instance, Ct);
        return (new DatasetFileSystem(tree, reader, NullLogger.Instance, Ct), origin);
    }
}
