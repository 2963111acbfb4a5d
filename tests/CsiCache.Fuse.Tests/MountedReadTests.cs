using System.Security.Cryptography;
using CsiCache.Fuse;

namespace CsiCache.Fuse.Tests;

/// <summary>
/// The loopback filesystem mounted for real and compared, entry by entry and byte by byte, with
/// its source directory (go-fuse's differential posixtest, in small).
/// </summary>
[Trait("Category", MountEnvironment.Trait)]
public sealed class MountedReadTests(SharedMountFixture fixture) : IClassFixture<SharedMountFixture>
{
    private TestMount M => fixture.Mount;

    private string Mounted(string relative) => Path.Combine(M.MountPoint, relative);

    private string Source(string relative) => Path.Combine(M.Source, relative);

    [Fact]
    public void Mount_AppearsInMountInfoAsFuseReadOnly()
    {
        MountInfoEntry? entry = MountInfo.Find(M.MountPoint);
        Assert.NotNull(entry);
        Assert.Equal("fuse.csicache", entry.FileSystemType);
        Assert.Equal("csicache", entry.Source);
        Assert.True(M.Session.Connection!.ProtocolMinor >= 19);
    }

    [Fact]
    public void Files_EveryByteEqualsSource()
    {
        foreach ((string name, int size) in SourceTree.Files)
        {
            byte[] expected = File.ReadAllBytes(Source(name));
            byte[] actual = File.ReadAllBytes(Mounted(name));
            Assert.Equal(size, actual.Length);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"{name}: bytes differ");
        }
    }

    [Fact]
    public void ManySmallFiles_EveryByteEqualsSource()
    {
        foreach (string path in Directory.EnumerateFiles(Source("many")))
        {
            string name = Path.GetFileName(path);
            Assert.Equal(File.ReadAllText(path), File.ReadAllText(Mounted(Path.Combine("many", name))));
        }
    }

    [Fact]
    public void Reads_AtOddOffsetsAndSizes_EqualSource()
    {
        byte[] expected = File.ReadAllBytes(Source("five-mib.bin"));
        using var file = File.OpenHandle(Mounted("five-mib.bin"));
        (long Offset, int Length)[] probes =
        [
            (0, 1), (4095, 2), (4096, 4096), (12345, 100000), ((1 << 20) - 3, (1 << 20) + 7),
            ((5 << 20) - 10, 10), ((5 << 20) - 10, 4096), (5 << 20, 100), ((5 << 20) + 4096, 1),
        ];
        foreach ((long offset, int length) in probes)
        {
            byte[] buffer = new byte[length];
            int total = 0;
            while (total < length)
            {
                int n = RandomAccess.Read(file, buffer.AsSpan(total), offset + total);
                if (n == 0)
                {
                    break;
                }
                total += n;
            }
            int expectedLength = (int)Math.Clamp(expected.Length - offset, 0, length);
            Assert.Equal(expectedLength, total);
            Assert.True(expected.AsSpan((int)Math.Min(offset, expected.Length), expectedLength).SequenceEqual(buffer.AsSpan(0, total)), $"bytes differ at {offset}+{length}");
        }
    }

    [Fact]
    public void Listing_EveryDirectoryEqualsSource()
    {
        var pending = new Queue<string>([""]);
        int directories = 0;
        while (pending.Count > 0)
        {
            string relative = pending.Dequeue();
            string[] expected = [.. Directory.EnumerateFileSystemEntries(Source(relative)).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];
            string[] actual = [.. Directory.EnumerateFileSystemEntries(Mounted(relative)).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];
            Assert.Equal(expected, actual);
            directories++;
            foreach (string name in expected)
            {
                string child = Path.Combine(relative, name);
                if ((File.GetAttributes(Source(child)) & FileAttributes.ReparsePoint) == 0 && Directory.Exists(Source(child)))
                {
                    pending.Enqueue(child);
                }
            }
        }
        Assert.True(directories >= 4);
    }

    [Fact]
    public void LargeDirectory_2000Entries_ListedCompletelyAcrossPages()
    {
        string[] names = [.. Directory.EnumerateFiles(Mounted("many")).Select(Path.GetFileName)!];
        Assert.Equal(SourceTree.ManyCount, names.Length);
        Assert.Equal(SourceTree.ManyCount, names.Distinct().Count());
        // Listing and stat'ing every entry is the pattern READDIRPLUS is for (ls -l, os.walk).
        long bytes = new DirectoryInfo(Mounted("many")).EnumerateFiles().Sum(f => f.Length);
        long expectedBytes = new DirectoryInfo(Source("many")).EnumerateFiles().Sum(f => f.Length);
        Assert.Equal(expectedBytes, bytes);
    }

    [Fact]
    public void Stat_TypeModeSizeAndTimeEqualSource()
    {
        foreach (string path in Directory.EnumerateFileSystemEntries(M.Source, "*", SearchOption.TopDirectoryOnly)
                     .Concat(Directory.EnumerateFileSystemEntries(Source("sub"), "*", SearchOption.AllDirectories)))
        {
            string relative = Path.GetRelativePath(M.Source, path);
            var expected = new FileInfo(path);
            var actual = new FileInfo(Mounted(relative));
            Assert.Equal(expected.LinkTarget, actual.LinkTarget);
            Assert.Equal(expected.Attributes & (FileAttributes.Directory | FileAttributes.ReparsePoint), actual.Attributes & (FileAttributes.Directory | FileAttributes.ReparsePoint));
            Assert.Equal(expected.UnixFileMode, actual.UnixFileMode);
            if (expected.LinkTarget is null && (expected.Attributes & FileAttributes.Directory) == 0)
            {
                Assert.Equal(expected.Length, actual.Length);
            }
            Assert.Equal(expected.LastWriteTimeUtc, actual.LastWriteTimeUtc);
        }
    }

    [Fact]
    public void Symlinks_ReadLinkEqualsSourceAndFollows()
    {
        Assert.Equal("one.bin", new FileInfo(Mounted("link-to-one")).LinkTarget);
        Assert.Equal("sub", new DirectoryInfo(Mounted("link-to-sub")).LinkTarget);
        Assert.Equal("does/not/exist", new FileInfo(Mounted("dangling")).LinkTarget);
        Assert.Equal(File.ReadAllBytes(Source("one.bin")), File.ReadAllBytes(Mounted("link-to-one")));
        Assert.True(File.Exists(Mounted("link-to-sub/nested/deep.txt")));
        Assert.Equal(File.Exists(Source("dangling")), File.Exists(Mounted("dangling"))); // .NET: the link exists
        Assert.Throws<FileNotFoundException>(() => File.ReadAllBytes(Mounted("dangling")));
    }

    [Fact]
    public void MissingName_ENOENT()
    {
        Assert.False(File.Exists(Mounted("no-such-file")));
        Assert.False(Directory.Exists(Mounted("sub/no-such-dir")));
        Assert.Throws<FileNotFoundException>(() => File.OpenHandle(Mounted("no-such-file")));
        Assert.Throws<DirectoryNotFoundException>(() => File.OpenHandle(Mounted("no-such-dir/file")));
    }

    [Fact]
    public void FileSystemErrno_ReachesTheCaller()
    {
        // The loopback answers ENAMETOOLONG past 255 bytes; FUSE itself allows 1024.
        string longName = new('n', 300);
        Assert.False(File.Exists(Mounted(longName)));
        Assert.Throws<PathTooLongException>(() => File.OpenHandle(Mounted(longName)));
    }

    [Fact]
    public void WriteAttempts_FailWithEROFS()
    {
        AssertReadOnly(() => File.WriteAllText(Mounted("new-file"), "x"));
        AssertReadOnly(() => File.OpenHandle(Mounted("odd.bin"), FileMode.Open, FileAccess.Write).Dispose());
        AssertReadOnly(() => Directory.CreateDirectory(Mounted("new-dir")));
        AssertReadOnly(() => File.Delete(Mounted("page.bin")));
        AssertReadOnly(() => File.Move(Mounted("page.bin"), Mounted("moved.bin")));
        AssertReadOnly(() => File.SetUnixFileMode(Mounted("page.bin"), UnixFileMode.UserRead));
        Assert.True(File.Exists(Source("page.bin")));
        Assert.False(File.Exists(Source("new-file")));
    }

    [Fact]
    public void StatFs_AnsweredThroughTheMount()
    {
        var drive = new DriveInfo(M.MountPoint);
        Assert.Equal("fuse.csicache", drive.DriveFormat);
        Assert.True(FuseMount.IsAlive(M.MountPoint));
    }

    [Fact]
    public void NoErrorsLogged()
    {
        Assert.DoesNotContain(M.Logs, line => line.Contains("failed", StringComparison.OrdinalIgnoreCase));
    }

    internal static void AssertReadOnly(Action write)
    {
        Exception e = Assert.ThrowsAny<Exception>(write);
        // .NET reports EROFS as an IOException carrying the errno (30) and strerror's text.
        Assert.True(e is IOException or UnauthorizedAccessException, $"unexpected {e.GetType()}: {e.Message}");
        Assert.True(e.HResult == 30 || e.Message.Contains("Read-only file system", StringComparison.Ordinal), $"not EROFS: {e.GetType().Name} 0x{e.HResult:x}: {e.Message}");
    }
}

/// <summary>Tests that need a mount of their own: fresh page cache, stop and cleanup behaviour, passthrough.</summary>
[Trait("Category", MountEnvironment.Trait)]
public sealed class MountLifecycleTests
{
    [Fact]
    public async Task ConcurrentReaders_8Threads_GetTheRightBytes()
    {
        await using TestMount m = await TestMount.CreateAsync(options: new FuseOptions { ReaderThreads = 4 });
        string[] names = ["five-mib.bin", "mib-plus-one.bin", "sub/sibling.bin", "odd.bin"];
        var expected = names.ToDictionary(n => n, n => File.ReadAllBytes(Path.Combine(m.Source, n)));

        // A fresh mount has a cold page cache, so these reads all become FUSE READs.
        Task[] readers = [.. Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            var random = new Random(t);
            for (int i = 0; i < 16; i++)
            {
                string name = names[(t + i) % names.Length];
                byte[] source = expected[name];
                using var file = File.OpenHandle(Path.Combine(m.MountPoint, name));
                long offset = random.NextInt64(0, source.Length);
                int length = random.Next(1, 2 << 20);
                byte[] buffer = new byte[length];
                int total = 0;
                while (total < length)
                {
                    int n = RandomAccess.Read(file, buffer.AsSpan(total), offset + total);
                    if (n == 0)
                    {
                        break;
                    }
                    total += n;
                }
                Assert.Equal((int)Math.Min(length, source.Length - offset), total);
                Assert.True(source.AsSpan((int)offset, total).SequenceEqual(buffer.AsSpan(0, total)), $"{name} differs at {offset}+{total}");
            }
        }))];
        await Task.WhenAll(readers).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        foreach (string name in names)
        {
            Assert.Equal(SHA256.HashData(expected[name]), SHA256.HashData(File.ReadAllBytes(Path.Combine(m.MountPoint, name))));
        }
        Assert.True(m.Fs.ReadCalls > 0);
        Assert.True(m.Fs.AsyncReads > 0, "no read took the asynchronous reply path");
    }

    [Fact]
    public async Task Stop_UnmountsEndsReadersAndDestroys()
    {
        await using TestMount m = await TestMount.CreateAsync();
        Assert.NotNull(MountInfo.Find(m.MountPoint));
        Assert.True(File.Exists(Path.Combine(m.MountPoint, "one.bin")));

        await m.Session.StopAsync();

        Assert.Null(MountInfo.Find(m.MountPoint));
        Assert.True(m.Session.Completion.IsCompleted);
        Assert.Equal(1, m.Fs.DestroyCalls);
        Assert.Equal(1, m.Fs.InitCalls);
        Assert.False(File.Exists(Path.Combine(m.MountPoint, "one.bin")));
        await m.Session.StopAsync(); // twice is fine
    }

    [Fact]
    public async Task Stop_WhileAFileIsOpen_DetachesAndReadersEndWhenItCloses()
    {
        await using TestMount m = await TestMount.CreateAsync();
        var open = new FileStream(Path.Combine(m.MountPoint, "odd.bin"), FileMode.Open, FileAccess.Read);
        try
        {
            // A busy mount cannot be unmounted; the session detaches it instead.
            Task stop = m.Session.StopAsync();
            await Task.Delay(300, TestContext.Current.CancellationToken);
            Assert.Null(MountInfo.Find(m.MountPoint));
            Assert.Equal(12345, open.Length); // the open file still works through the detached mount
            byte[] buffer = new byte[100];
            Assert.Equal(100, open.Read(buffer));
            open.Dispose();
            await stop.WaitAsync(TimeSpan.FromSeconds(15), TestContext.Current.CancellationToken);
            await m.Session.Completion.WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        }
        finally
        {
            open.Dispose();
        }
    }

    [Fact]
    public async Task CleanupStale_DeadServer_RemovesTheMount()
    {
        MountEnvironment.Require();
        string root = TestMount.NewRoot();
        string mountPoint = Path.Combine(root, "mnt");
        try
        {
            // A server that mounted and died: the device closes without an unmount.
            int fd = Native.Open("/dev/fuse", Native.O_RDWR | Native.O_CLOEXEC);
            Assert.True(fd >= 0);
            FuseMount.Mount(mountPoint, fd, new FuseOptions());
            Assert.Equal(0, Native.Close(fd));

            Assert.NotNull(MountInfo.Find(mountPoint));
            Assert.False(FuseMount.IsAlive(mountPoint));
            var e = Assert.ThrowsAny<IOException>(() => Directory.EnumerateFileSystemEntries(mountPoint).ToList());
            Assert.Contains("not connected", e.Message, StringComparison.OrdinalIgnoreCase);

            Assert.Equal(1, FuseMount.CleanupStale(mountPoint));

            Assert.Null(MountInfo.Find(mountPoint));
            Assert.Empty(Directory.EnumerateFileSystemEntries(mountPoint));
            Assert.Equal(0, FuseMount.CleanupStale(mountPoint)); // nothing left to do
        }
        finally
        {
            await TestMount.TearDownAsync(null, mountPoint, root);
        }
    }

    [Fact]
    public async Task CleanupStale_LiveServer_LeavesItMounted()
    {
        await using TestMount m = await TestMount.CreateAsync();
        Assert.Equal(0, FuseMount.CleanupStale(m.MountPoint));
        Assert.NotNull(MountInfo.Find(m.MountPoint));
        Assert.True(File.Exists(Path.Combine(m.MountPoint, "one.bin")));
    }

    [Fact]
    public async Task FromExistingFd_ServesAMountMadeElsewhere()
    {
        MountEnvironment.Require();
        string root = TestMount.NewRoot();
        string mountPoint = Path.Combine(root, "mnt");
        var fs = new LoopbackFileSystem(SharedSource.Path);
        FuseSession? session = null;
        try
        {
            // As a mount helper would: open the device, mount, hand the descriptor over before INIT.
            int fd = Native.Open("/dev/fuse", Native.O_RDWR | Native.O_CLOEXEC);
            Assert.True(fd >= 0);
            FuseMount.Mount(mountPoint, fd, new FuseOptions());
            session = FuseSession.FromExistingFd(fd, mountPoint, fs);

            Assert.Equal(File.ReadAllBytes(Path.Combine(SharedSource.Path, "odd.bin")), File.ReadAllBytes(Path.Combine(mountPoint, "odd.bin")));
            Assert.Equal(1, fs.InitCalls);
        }
        finally
        {
            await TestMount.TearDownAsync(session, mountPoint, root);
        }
        Assert.Null(MountInfo.Find(mountPoint));
    }

    [Fact]
    public async Task FromExistingFd_AlreadyInitialized_TakesOverALiveConnection()
    {
        MountEnvironment.Require();
        string root = TestMount.NewRoot();
        string mountPoint = Path.Combine(root, "mnt");
        var oldFs = new LoopbackFileSystem(SharedSource.Path);
        var newFs = new LoopbackFileSystem(SharedSource.Path);
        FuseSession? session = null;
        try
        {
            int fd = Native.Open("/dev/fuse", Native.O_RDWR | Native.O_CLOEXEC);
            Assert.True(fd >= 0);
            FuseMount.Mount(mountPoint, fd, new FuseOptions());

            // The "old server" answers INIT and goes away without unmounting, leaving the descriptor.
            using (var oldServer = new FuseDispatcher(oldFs))
            {
                var device = new FuseDevice(fd, log: null);
                byte[] request = new byte[oldServer.RequestBufferSize];
                int n = device.ReadRequest(request);
                Assert.True(n >= 40, $"read from /dev/fuse: {n}");
                oldServer.Dispatch(request.AsSpan(0, n), new byte[oldServer.ReplyBufferSize], device);
                Assert.Equal(1, oldFs.InitCalls);
                device.SetHandleAsInvalid(); // hand the number over without closing it
            }

            // The new server starts on the same descriptor; the kernel will not send INIT again.
            session = FuseSession.FromExistingFd(fd, mountPoint, newFs, alreadyInitialized: true);
            Assert.Equal(1, newFs.InitCalls);
            Assert.Equal(File.ReadAllBytes(Path.Combine(SharedSource.Path, "sub/sibling.bin")), File.ReadAllBytes(Path.Combine(mountPoint, "sub/sibling.bin")));
            Assert.True(newFs.ReadCalls > 0);
        }
        finally
        {
            await TestMount.TearDownAsync(session, mountPoint, root);
        }
        Assert.Null(MountInfo.Find(mountPoint));
    }

    [Fact]
    public async Task MountAsync_FileSystemInitThrows_FailsAndLeavesNothingMounted()
    {
        MountEnvironment.Require();
        string root = TestMount.NewRoot();
        string mountPoint = Path.Combine(root, "mnt");
        try
        {
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
                FuseSession.MountAsync(mountPoint, new FailingInitFileSystem(), cancellationToken: TestContext.Current.CancellationToken));
            Assert.Equal("cannot start", e.Message);
            Assert.Null(MountInfo.Find(mountPoint));
        }
        finally
        {
            await TestMount.TearDownAsync(null, mountPoint, root);
        }
    }

    [Fact]
    public async Task MountAsync_MissingMountPoint_ThrowsWithErrno()
    {
        MountEnvironment.Require();
        var e = await Assert.ThrowsAsync<FuseNativeException>(() =>
            FuseSession.MountAsync("/nonexistent/csicache/mnt", new LoopbackFileSystem(SharedSource.Path), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Equal("mount", e.Call);
        Assert.Equal(2, e.Errno);
    }

    private sealed class FailingInitFileSystem : IFuseFileSystem
    {
        public void Init(FuseConnection connection) => throw new InvalidOperationException("cannot start");

        public Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseEntry entry)
        {
            entry = default;
            return Errno.ENOENT;
        }

        public void Forget(ulong nodeId, ulong lookups)
        {
        }

        public Errno GetAttr(ulong nodeId, out FuseAttributes attributes, out TimeSpan timeout)
        {
            attributes = new FuseAttributes { Mode = FuseFileType.Directory | 0x1ED };
            timeout = default;
            return Errno.Ok;
        }

        public Errno ReadLink(ulong nodeId, Span<byte> target, out int length)
        {
            length = 0;
            return Errno.EINVAL;
        }

        public Errno Open(ulong nodeId, int flags, out FuseOpenResult result)
        {
            result = default;
            return Errno.EISDIR;
        }

        public ValueTask<FuseReadResult> ReadAsync(ulong nodeId, ulong handle, long offset, Memory<byte> destination, CancellationToken cancellationToken) =>
            ValueTask.FromResult<FuseReadResult>(Errno.EIO);

        public void Release(ulong nodeId, ulong handle)
        {
        }

        public Errno OpenDir(ulong nodeId, int flags, out FuseOpenResult result)
        {
            result = default;
            return Errno.Ok;
        }

        public Errno ReadDir(ulong nodeId, ulong handle, ulong offset, ref DirectoryWriter writer) => Errno.Ok;

        public void ReleaseDir(ulong nodeId, ulong handle)
        {
        }
    }

    [Fact]
    public async Task Passthrough_ReadsBypassTheServerAndEqualSource()
    {
        if (!MountEnvironment.KernelHasPassthrough())
        {
            Assert.Skip("FUSE passthrough needs Linux 6.9 or later");
        }
        await using TestMount m = await TestMount.CreateAsync(usePassthrough: true);
        Assert.True(m.Session.PassthroughEnabled, "the kernel did not accept FUSE_PASSTHROUGH: " + string.Join("; ", m.Logs));

        foreach (string name in new[] { "five-mib.bin", "mib-plus-one.bin", "one.bin", "empty.bin" })
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(m.Source, name)), File.ReadAllBytes(Path.Combine(m.MountPoint, name)));
        }
        // Two opens of one inode at once share its backing file.
        using (var a = File.OpenHandle(Path.Combine(m.MountPoint, "odd.bin")))
        using (var b = File.OpenHandle(Path.Combine(m.MountPoint, "odd.bin")))
        {
            byte[] buffer = new byte[10];
            Assert.Equal(10, RandomAccess.Read(b, buffer, 100));
            Assert.Equal(File.ReadAllBytes(Path.Combine(m.Source, "odd.bin")).AsSpan(100, 10).ToArray(), buffer);
        }

        Assert.True(m.Fs.PassthroughOpens >= 6);
        Assert.Equal(0, m.Fs.ReadCalls); // no READ reached the server: the kernel read the backing files
    }
    [Fact]
    public async Task NoOpen_OpenDeclinedOnce_KernelStopsSendingOpenReleaseAndFlush()
    {
        await using TestMount m = await TestMount.CreateAsync(declineOpens: true);
        Assert.True(m.Session.NoOpenSupported, "kernels since 3.14 (FUSE 7.23) offer FUSE_NO_OPEN_SUPPORT; this one did not");

        // Every file, twice, each open read whole and closed: all bytes right, through handle 0.
        foreach ((string name, _) in SourceTree.Files)
        {
            byte[] expected = File.ReadAllBytes(Path.Combine(m.Source, name));
            Assert.Equal(expected, File.ReadAllBytes(Path.Combine(m.MountPoint, name)));
            Assert.Equal(expected, File.ReadAllBytes(Path.Combine(m.MountPoint, name)));
        }
        // Pages are kept across opens (the kernel's default for zero-message opens): re-reads reach nobody.
        long reads = m.Fs.ReadCalls;
        long forgets = m.Session.RequestCount(Protocol.FuseOpcode.Forget) + m.Session.RequestCount(Protocol.FuseOpcode.BatchForget);
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(m.Source, "odd.bin")), File.ReadAllBytes(Path.Combine(m.MountPoint, "odd.bin")));
        }
        if (m.Session.RequestCount(Protocol.FuseOpcode.Forget) + m.Session.RequestCount(Protocol.FuseOpcode.BatchForget) == forgets)
        {
            Assert.Equal(reads, m.Fs.ReadCalls); // unless a drop_caches elsewhere on this shared machine (FORGETs show it) took the pages
        }

        await Task.Delay(300, TestContext.Current.CancellationToken); // RELEASE is sent in the background: give a stray one time to show
        Assert.Equal(1, m.Session.RequestCount(Protocol.FuseOpcode.Open));    // the one answered ENOSYS
        Assert.Equal(1, m.Session.RequestCount(Protocol.FuseOpcode.Flush));   // the first close; ENOSYS silences the rest
        Assert.Equal(0, m.Session.RequestCount(Protocol.FuseOpcode.Release)); // none, not even for the first open
        Assert.True(m.Fs.HandleZeroReads > 0);
        Assert.Equal(m.Fs.ReadCalls, m.Fs.HandleZeroReads);
        Assert.True(m.Session.RequestCount(Protocol.FuseOpcode.OpenDir) == 0, "nothing listed a directory here");
        Assert.True(Directory.EnumerateFileSystemEntries(m.MountPoint).Any());
        Assert.True(m.Session.RequestCount(Protocol.FuseOpcode.OpenDir) > 0, "directories keep OPENDIR");
    }

    [Fact]
    public async Task NoOpendir_OpendirDeclinedOnce_KernelStopsSendingOpendirAndReleasedir_AndCachesListings()
    {
        await using TestMount m = await TestMount.CreateAsync(declineOpenDirs: true);
        Assert.True(m.Session.NoOpendirSupported, "kernels since 5.1 (FUSE 7.29) offer FUSE_NO_OPENDIR_SUPPORT; this one did not");

        static string[] Names(string directory) =>
            [.. Directory.EnumerateFileSystemEntries(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];
        string[] directories = ["", "many", "sub", "sub/nested"];
        foreach (string relative in directories)
        {
            Assert.Equal(Names(Path.Combine(m.Source, relative)), Names(Path.Combine(m.MountPoint, relative)));
        }
        long forgets = m.Session.RequestCount(Protocol.FuseOpcode.Forget) + m.Session.RequestCount(Protocol.FuseOpcode.BatchForget);
        long listings = m.Session.RequestCount(Protocol.FuseOpcode.ReadDir) + m.Session.RequestCount(Protocol.FuseOpcode.ReadDirPlus);
        foreach (string relative in directories)
        {
            Assert.Equal(Names(Path.Combine(m.Source, relative)), Names(Path.Combine(m.MountPoint, relative)));
        }
        if (m.Session.RequestCount(Protocol.FuseOpcode.Forget) + m.Session.RequestCount(Protocol.FuseOpcode.BatchForget) == forgets)
        {
            // Handle-0 opens carry FOPEN_CACHE_DIR: a listing read to its end is served by the kernel
            // from then on (unless someone's drop_caches evicted the inodes, which the FORGETs give away).
            Assert.Equal(listings, m.Session.RequestCount(Protocol.FuseOpcode.ReadDir) + m.Session.RequestCount(Protocol.FuseOpcode.ReadDirPlus));
        }

        await Task.Delay(300, TestContext.Current.CancellationToken); // RELEASEDIR is sent in the background: give a stray one time to show
        Assert.Equal(1, m.Session.RequestCount(Protocol.FuseOpcode.OpenDir));    // the one answered ENOSYS
        Assert.Equal(0, m.Session.RequestCount(Protocol.FuseOpcode.ReleaseDir)); // none, not even for the first
        Assert.True(m.Fs.HandleZeroReadDirs > 0);
    }

    [Fact]
    public async Task Open_Answered_EachOpenSendsOpenAndRelease()
    {
        // The control for the test above: with OPEN answered, the counters see every open and close.
        await using TestMount m = await TestMount.CreateAsync();
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(m.Source, "odd.bin")), File.ReadAllBytes(Path.Combine(m.MountPoint, "odd.bin")));
        }
        DateTime deadline = DateTime.UtcNow.AddSeconds(10);
        while (m.Session.RequestCount(Protocol.FuseOpcode.Release) < 5 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
        Assert.Equal(5, m.Session.RequestCount(Protocol.FuseOpcode.Open));
        Assert.Equal(5, m.Session.RequestCount(Protocol.FuseOpcode.Release));
        Assert.Equal(5, m.Session.RequestCount(Protocol.FuseOpcode.Flush)); // the loopback answers OPEN without FOPEN_NOFLUSH
    }
}
