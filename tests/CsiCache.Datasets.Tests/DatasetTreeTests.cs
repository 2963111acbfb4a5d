using CsiCache.Origins;

namespace CsiCache.Datasets.Tests;

/// <summary>The tree's logic without the kernel: ids, lookups, paging, forget counts, versions.</summary>
public sealed class DatasetTreeTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task FindChild_NestedPaths_ResolvesAndIdsAreDeterministic()
    {
        var origin = new InMemoryOrigin();
        origin.AddFile("a/b/c.txt", 10);
        origin.AddFile("a/d.txt", 20);
        origin.AddFile("top.bin", 30);

        var tree = new DatasetTree(origin, refresh: null);
        DatasetEntry a = (await tree.FindChildAsync(tree.Root, "a", Ct))!;
        DatasetEntry b = (await tree.FindChildAsync(a, "b", Ct))!;
        DatasetEntry c = (await tree.FindChildAsync(b, "c.txt", Ct))!;
        DatasetEntry top = (await tree.FindChildAsync(tree.Root, "top.bin", Ct))!;

        Assert.Equal("a/b/c.txt", c.Path);
        Assert.Equal(10, c.Attributes.Size);
        Assert.Equal(b.NodeId, c.ParentId);
        Assert.Null(await tree.FindChildAsync(a, "missing", Ct));
        Assert.Equal(1UL, tree.Root.NodeId);
        ulong[] ids = [a.NodeId, b.NodeId, c.NodeId, top.NodeId];
        Assert.Equal(ids.Length, ids.Distinct().Count());
        Assert.DoesNotContain(0UL, ids);
        Assert.DoesNotContain(1UL, ids);

        // Another tree (say, a restarted server) over the same origin gives the same ids.
        var again = new DatasetTree(origin, refresh: null);
        DatasetEntry c2 = (await again.FindChildAsync((await again.FindChildAsync((await again.FindChildAsync(again.Root, "a", Ct))!, "b", Ct))!, "c.txt", Ct))!;
        Assert.Equal(c.NodeId, c2.NodeId);
        Assert.Equal(NodeIds.ForPath("a/b/c.txt", 0), c.NodeId);
        Assert.True(again.TryGetNode(c.NodeId, out DatasetEntry byId));
        Assert.Same(c2, byId);
    }

    [Fact]
    public async Task Listing_HundredThousandEntries_IsLoadedPageByPage()
    {
        const int count = 100_000;
        var origin = new InMemoryOrigin(pageSize: 1000);
        origin.AddDirectory("big");
        for (int i = 0; i < count; i++)
        {
            // Each claims 1 GiB: 100 TB of contents that must never be materialised.
            origin.AddFile($"big/f{i:D6}.bin", 1L << 30);
        }
        var tree = new DatasetTree(origin, refresh: null);
        DatasetEntry big = (await tree.FindChildAsync(tree.Root, "big", Ct))!;
        int listCallsBefore = origin.ListCalls;

        long memoryBefore = GC.GetTotalMemory(forceFullCollection: true);
        DirectoryListing listing = tree.CurrentListing(big);
        Assert.Equal(0, listing.Count);
        DatasetEntry first = (await tree.GetEntryAtAsync(listing, 0, Ct))!;
        Assert.Equal("f000000.bin", first.Name);
        Assert.Equal(1, origin.ListCalls - listCallsBefore); // one page, not the whole directory
        Assert.Equal(1000, listing.Count);

        // A lookup deep into the directory loads pages until the name turns up, no further.
        DatasetEntry mid = (await tree.FindChildAsync(big, "f049999.bin", Ct))!;
        Assert.Equal(1L << 30, mid.Attributes.Size);
        Assert.Equal(50, origin.ListCalls - listCallsBefore);

        var seen = new HashSet<ulong>();
        for (int i = 0; ; i++)
        {
            DatasetEntry? entry = await tree.GetEntryAtAsync(listing, i, Ct);
            if (entry is null)
            {
                break;
            }
            Assert.True(seen.Add(entry.NodeId), $"duplicate id for {entry.Path}");
        }
        Assert.Equal(count, seen.Count);
        Assert.True(listing.IsComplete);
        Assert.Equal(100, origin.ListCalls - listCallsBefore);
        Assert.Equal(0, origin.ReadCalls);
        long growth = GC.GetTotalMemory(forceFullCollection: true) - memoryBefore;
        Assert.True(growth < 100L << 20, $"100k entries cost {growth >> 20} MiB of metadata");
        GC.KeepAlive(tree);
    }

    [Fact]
    public async Task Forget_CountsLookupsAndNeverGoesNegative()
    {
        var origin = new InMemoryOrigin();
        origin.AddFile("x", 1);
        var tree = new DatasetTree(origin, refresh: null);
        DatasetEntry x = (await tree.FindChildAsync(tree.Root, "x", Ct))!;

        DatasetTree.AddLookup(x);
        DatasetTree.AddLookup(x);
        DatasetTree.AddLookup(x);
        Assert.Equal(3, x.Lookups);
        Assert.Equal(1, tree.Forget(x.NodeId, 2));
        Assert.Equal(0, tree.Forget(x.NodeId, 5));
        Assert.Equal(-1, tree.Forget(0xdeadbeef, 1));

        // Forgotten metadata stays: the next lookup costs no origin call and keeps the id.
        int calls = origin.ListCalls;
        DatasetEntry again = (await tree.FindChildAsync(tree.Root, "x", Ct))!;
        Assert.Same(x, again);
        Assert.Equal(calls, origin.ListCalls);
    }

    [Fact]
    public async Task ResolveFile_ListingWithoutVersion_StatsOnceThenUsesIt()
    {
        var origin = new InMemoryOrigin(listVersions: false);
        origin.AddFile("f.bin", 4096, "etag-1");
        var tree = new DatasetTree(origin, refresh: null);
        DatasetEntry f = (await tree.FindChildAsync(tree.Root, "f.bin", Ct))!;

        FileVersion v = await tree.ResolveFileAsync(f, Ct);
        FileVersion again = await tree.ResolveFileAsync(f, Ct);
        Assert.Equal("etag-1", v.Object.Version);
        Assert.Same(v, again);
        Assert.Equal(1, origin.StatCalls);
    }

    [Fact]
    public async Task ResolveFile_ListingWithVersion_NeedsNoStat()
    {
        var origin = new InMemoryOrigin(listVersions: true);
        origin.AddFile("f.bin", 4096, "etag-1");
        var tree = new DatasetTree(origin, refresh: null);
        DatasetEntry f = (await tree.FindChildAsync(tree.Root, "f.bin", Ct))!;
        FileVersion v = await tree.ResolveFileAsync(f, Ct);
        Assert.Equal(0, origin.StatCalls);
        Assert.Equal(Cache.ObjectKey.From(origin.Identity, "f.bin", "etag-1"), v.Key);
    }

    [Fact]
    public async Task Refresh_AfterTtl_NewVersionGetsNewCacheKeyAndNewNamesAppear()
    {
        var time = new ManualTime();
        var origin = new InMemoryOrigin();
        origin.AddFile("f.bin", 100, "v1");
        var tree = new DatasetTree(origin, refresh: TimeSpan.FromSeconds(30), time);
        DatasetEntry f = (await tree.FindChildAsync(tree.Root, "f.bin", Ct))!;
        FileVersion v1 = await tree.ResolveFileAsync(f, Ct);

        origin.AddFile("f.bin", 200, "v2");
        origin.AddFile("new.bin", 1, "v1");
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Same(v1, await tree.ResolveFileAsync(f, Ct)); // within the TTL: trusted
        Assert.Null(await tree.FindChildAsync(tree.Root, "new.bin", Ct));

        time.Advance(TimeSpan.FromSeconds(25));
        Assert.True(tree.NeedsRevalidation(f));
        FileVersion v2 = await tree.ResolveFileAsync(f, Ct);
        Assert.Equal("v2", v2.Object.Version);
        Assert.Equal(200, f.Attributes.Size);
        Assert.NotEqual(v1.Key, v2.Key);
        DatasetEntry added = (await tree.FindChildAsync(tree.Root, "new.bin", Ct))!;
        Assert.Equal("new.bin", added.Path);
        Assert.Same(f, await tree.FindChildAsync(tree.Root, "f.bin", Ct)); // same node across the refresh
    }

    [Fact]
    public async Task Listing_UnrepresentableNames_AreSkipped()
    {
        var origin = new InMemoryOrigin();
        origin.AddFile(new string('n', 300), 1);
        origin.AddFile("ok.txt", 1);
        var tree = new DatasetTree(origin, refresh: null);
        DirectoryListing listing = tree.CurrentListing(tree.Root);
        Assert.Equal("ok.txt", (await tree.GetEntryAtAsync(listing, 0, Ct))!.Name);
        Assert.Null(await tree.GetEntryAtAsync(listing, 1, Ct));
        Assert.Equal(1, tree.SkippedNames);
    }

    [Fact]
    public async Task FindById_UnknownIdAfterRestart_IsFoundByWalkingTheListings()
    {
        var origin = new InMemoryOrigin();
        origin.AddFile("a/b/c/deep.bin", 5);
        origin.AddFile("x/y.bin", 6);
        var before = new DatasetTree(origin, refresh: null);
        DatasetEntry deep = (await before.FindChildAsync((await before.FindChildAsync((await before.FindChildAsync((await before.FindChildAsync(before.Root, "a", Ct))!, "b", Ct))!, "c", Ct))!, "deep.bin", Ct))!;

        // A new process knows nothing yet; the kernel asks about the old id.
        var after = new DatasetTree(origin, refresh: null);
        Assert.False(after.TryGetNode(deep.NodeId, out _));
        DatasetEntry? found = await after.FindByIdAsync(deep.NodeId, Ct);
        Assert.NotNull(found);
        Assert.Equal("a/b/c/deep.bin", found.Path);
        Assert.Null(await after.FindByIdAsync(0x1234_5678_9abc_def0, Ct));
    }

    [Fact]
    public async Task FileSystem_HandleFromAnEarlierProcess_IsReopenedOnRead()
    {
        var origin = new InMemoryOrigin();
        origin.AddFile("d/f.bin", 3000);
        using var temp = new TempDirectory("takeover");
        using var cache = new Cache.ChunkCache(new Cache.ChunkCacheOptions { RootDirectory = temp.Path, QuotaBytes = 64 << 20, ChunkSize = 1 << 20, FlushToDisk = false });
        var log = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        var first = new DatasetFileSystem(new DatasetTree(origin, null), new ChunkReader(cache, origin, new MountCounters(), null, 0, log, Ct), log, Ct);
        Assert.Equal(Fuse.Errno.Ok, first.Lookup(1, "d"u8, out Fuse.FuseEntry d));
        Assert.Equal(Fuse.Errno.Ok, first.Lookup(d.NodeId, "f.bin"u8, out Fuse.FuseEntry f));
        Assert.Equal(Fuse.Errno.Ok, first.Open(f.NodeId, 0, out Fuse.FuseOpenResult open));

        // The next process serves the same connection: same node id, same handle number.
        var second = new DatasetFileSystem(new DatasetTree(origin, null), new ChunkReader(cache, origin, new MountCounters(), null, 0, log, Ct), log, Ct);
        byte[] buffer = new byte[4096];
        Fuse.FuseReadResult read = await second.ReadAsync(f.NodeId, open.Handle, 1000, buffer, Ct);
        Assert.Equal(Fuse.Errno.Ok, read.Error);
        Assert.Equal(2000, read.BytesRead);
        Assert.Equal((byte)(1000 * 31 % 251), buffer[0]);
        Assert.Equal(Fuse.Errno.Ok, second.GetAttr(d.NodeId, out Fuse.FuseAttributes attributes, out _));
        Assert.Equal(Fuse.FuseFileType.Directory, attributes.Mode & Fuse.FuseFileType.Mask);
        Assert.Equal(Fuse.Errno.Ok, second.Open(f.NodeId, 0, out Fuse.FuseOpenResult reopened));
        Assert.NotEqual(open.Handle, reopened.Handle);
        Assert.Equal(Fuse.Errno.ESTALE, second.GetAttr(0x1234_5678_9abc_def0, out _, out _));
    }

    [Fact]
    public void NodeIds_AreStableSpreadAndNeverReserved()
    {
        Assert.Equal(NodeIds.Root, NodeIds.ForPath("", 0));
        Assert.Equal(NodeIds.ForPath("a/b", 0), NodeIds.ForPath("a/b", 0));
        Assert.NotEqual(NodeIds.ForPath("a/b", 0), NodeIds.ForPath("a/b", 1));
        var ids = new HashSet<ulong>();
        for (int i = 0; i < 200_000; i++)
        {
            ulong id = NodeIds.ForPath("dir/file" + i, 0);
            Assert.True(id > 1);
            ids.Add(id);
        }
        Assert.Equal(200_000, ids.Count);
    }

    [Fact]
    public async Task FileSystem_LookupOpenReadRelease_CountsReferencesAndHandles()
    {
        var origin = new InMemoryOrigin();
        origin.AddFile("one", 1);
        origin.AddFile("two", 2);
        var tree = new DatasetTree(origin, refresh: null);
        using var temp = new TempDirectory("fs");
        using var cache = new Cache.ChunkCache(new Cache.ChunkCacheOptions { RootDirectory = temp.Path, QuotaBytes = 64 << 20, ChunkSize = 1 << 20, FlushToDisk = false });
        var counters = new MountCounters();
        var reader = new ChunkReader(cache, origin, counters, prefetcher: null, 0, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, Ct);
        var fs = new DatasetFileSystem(tree, reader, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, Ct);

        Assert.Equal(Fuse.Errno.Ok, fs.Lookup(1, "one"u8, out Fuse.FuseEntry entry));
        Assert.True(tree.TryGetNode(entry.NodeId, out DatasetEntry one));
        Assert.Equal(1, one.Lookups);
        Assert.Equal(Fuse.Errno.ENOENT, fs.Lookup(1, "nope"u8, out Fuse.FuseEntry negative));
        Assert.True(negative.EntryTimeout > TimeSpan.Zero, "an immutable dataset caches misses");

        Assert.Equal(Fuse.Errno.Ok, fs.Open(entry.NodeId, 0, out Fuse.FuseOpenResult open));
        Assert.True(open.Options.HasFlag(Fuse.FuseOpenOptions.KeepCache));
        Assert.Equal(Fuse.Errno.EROFS, fs.Open(entry.NodeId, 2 /* O_RDWR */, out _));
        byte[] buffer = new byte[10];
        Fuse.FuseReadResult read = await fs.ReadAsync(entry.NodeId, open.Handle, 0, buffer, Ct);
        Assert.Equal(1, read.BytesRead);
        Assert.Equal((byte)0, buffer[0]);
        fs.Release(entry.NodeId, open.Handle);
        Assert.Equal(0, one.Opens.CachedOpens);
        // The kernel never reads a released handle; an unknown handle is taken for one opened by a
        // previous process (a takeover) and reopened from the READ's node id.
        Assert.Equal(1, (await fs.ReadAsync(entry.NodeId, open.Handle, 0, buffer, Ct)).BytesRead);
        Assert.Equal(Fuse.Errno.EBADF, (await fs.ReadAsync(0x1234_5678_9abc_def0, 77, 0, buffer, Ct)).Error);

        tree.Forget(entry.NodeId, 1);
        Assert.Equal(0, one.Lookups);
    }
}
