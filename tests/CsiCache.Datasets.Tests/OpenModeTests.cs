using CsiCache.Fuse;
using CsiCache.Fuse.Protocol;

namespace CsiCache.Datasets.Tests;

/// <summary>
/// The three passthrough settings on real mounts. Auto, where the kernel grants passthrough and
/// offers zero-message opens, leaves the open mode to the first regular file opened: at most a chunk
/// makes the connection zero-message, larger keeps OPEN (passthrough for files the cache holds
/// whole). Chunks of 1 MiB keep the "large" files small.
/// </summary>
[Collection(MountCollection.Name)]
public sealed class OpenModeTests
{
    private const int MiB = 1 << 20;

    private static readonly Func<TempDirectory, DatasetHostOptions> SmallChunks =
        t => TestMount.HostOptions(t, chunkSize: MiB) with { OriginTimeout = TimeSpan.FromSeconds(30) };

    // Three chunks and a few bytes, and well under one chunk.
    private static readonly byte[] LargeFile = TestData.Bytes((3 * MiB) + 5, 61);
    private static readonly byte[] SmallFile = TestData.Bytes(300_000, 62);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 90_000)]
    public async Task Auto_FirstOpenOfAFileOfOneChunk_MakesTheMountZeroMessage_ForSmallAndLargeFilesAlike()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] boundary = TestData.Bytes(MiB, 51); // exactly one chunk: still "small"
        byte[] small = TestData.Bytes(300_000, 52);
        byte[] large = TestData.Bytes((3 * MiB) + 123, 53);
        await using TestMount test = await MountAsync(source, PassthroughMode.Auto, ("boundary.bin", boundary), ("small.bin", small), ("large.bin", large));
        DatasetFileSystem fs = test.Mount.FileSystem;
        FuseSession session = test.Mount.Session;
        RequirePassthroughAndNoOpen(test);
        Assert.Equal(FileOpenMode.FirstOpenDecides, fs.FileOpens);
        Assert.False(fs.ZeroMessageOpen);

        TestData.AssertSameBytes(boundary, test.PathOf("boundary.bin"));
        Assert.True(fs.ZeroMessageOpen);
        TestData.AssertSameBytes(small, test.PathOf("small.bin"));
        TestData.AssertSameBytes(large, test.PathOf("large.bin"));
        Native.DropPageCache(test.PathOf("large.bin"));
        TestData.AssertSameBytes(large, test.PathOf("large.bin")); // handle-0 READs from the chunk cache

        await Task.Delay(300, Ct); // RELEASE would be sent in the background: give a stray one time to arrive
        Assert.Equal(1, session.RequestCount(FuseOpcode.Open));    // the deciding one, answered ENOSYS
        Assert.Equal(1, session.RequestCount(FuseOpcode.Flush));   // the first close, answered ENOSYS
        Assert.Equal(0, session.RequestCount(FuseOpcode.Release));
        Assert.Equal(0, fs.OpenFiles);
        Assert.Equal(0, fs.PassthroughOpensServed);
        Assert.True(fs.FilesReadWithoutOpen >= 1);
    }

    [Fact(Timeout = 90_000)]
    public async Task Auto_FirstOpenOfALargeFile_KeepsOpen_AndACachedSmallFileIsServedByPassthrough()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        (byte[] large, byte[] small) = (LargeFile, SmallFile);
        await using TestMount test = await MountAsync(source, PassthroughMode.Auto, ("large.bin", large), ("small.bin", small));
        DatasetFileSystem fs = test.Mount.FileSystem;
        FuseSession session = test.Mount.Session;
        RequirePassthroughAndNoOpen(test);

        // Cold: the large file decides, and is READ-served (nothing of it is cached yet).
        TestData.AssertSameBytes(large, test.PathOf("large.bin"));
        Assert.Equal(FileOpenMode.Open, fs.FileOpens);
        Assert.False(fs.ZeroMessageOpen);
        Assert.True(test.Mount.GetStats().BytesServed >= large.Length, "the cold read must have been served by READ");

        // A small file: READ while cold, then, cached whole and open nowhere, passthrough.
        TestData.AssertSameBytes(small, test.PathOf("small.bin"));
        Assert.Equal(0, fs.PassthroughOpensServed);
        await WaitForAsync(() => fs.OpenFiles == 0); // RELEASE follows close(2) asynchronously
        Assert.Equal(0, fs.OpenFiles);
        long served = test.Mount.GetStats().BytesServed;
        TestData.AssertSameBytes(small, test.PathOf("small.bin"));
        Assert.Equal(1, fs.PassthroughOpensServed);
        Assert.Equal(served, test.Mount.GetStats().BytesServed); // no READ reached us

        await WaitForAsync(() => fs.OpenFiles == 0);
        Assert.Equal(0, fs.OpenFiles);
        Assert.Equal(3, session.RequestCount(FuseOpcode.Open));
        Assert.Equal(3, session.RequestCount(FuseOpcode.Release));
        Assert.Equal(0, session.RequestCount(FuseOpcode.Flush)); // FOPEN_NOFLUSH
        Assert.Equal(0, fs.FilesReadWithoutOpen);
    }

    /// <summary>The cache keeps a multi-chunk object in one file: once it holds it whole, that file is the backing file.</summary>
    [Fact(Timeout = 90_000)]
    public async Task Auto_FirstOpenOfALargeFile_OnceCachedWhole_IsServedByPassthrough()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] large = TestData.Bytes((3 * MiB) + 5, 71);
        await using TestMount test = await MountAsync(source, PassthroughMode.Auto, ("large.bin", large));
        DatasetFileSystem fs = test.Mount.FileSystem;
        RequirePassthroughAndNoOpen(test);

        TestData.AssertSameBytes(large, test.PathOf("large.bin"));
        Assert.False(fs.ZeroMessageOpen);
        Assert.Equal(0, fs.PassthroughOpensServed);
        await WaitForAsync(() => fs.OpenFiles == 0 && test.Mount.GetStats().CachedBytes >= large.Length);
        Assert.Equal(0, fs.OpenFiles);
        Assert.Equal(large.Length, test.Mount.GetStats().CachedBytes);

        long served = test.Mount.GetStats().BytesServed;
        TestData.AssertSameBytes(large, test.PathOf("large.bin"));
        Assert.Equal(1, fs.PassthroughOpensServed);
        Assert.Equal(served, test.Mount.GetStats().BytesServed); // no READ reached us
    }

    [Fact(Timeout = 90_000)]
    public async Task Off_IsZeroMessageFromInit_WhateverTheFirstFile()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        (byte[] large, byte[] small) = (LargeFile, SmallFile);
        await using TestMount test = await MountAsync(source, PassthroughMode.Off, ("large.bin", large), ("small.bin", small));
        DatasetFileSystem fs = test.Mount.FileSystem;
        FuseSession session = test.Mount.Session;
        Assert.True(session.NoOpenSupported, "this kernel should offer FUSE_NO_OPEN_SUPPORT (7.23, Linux 3.14)");
        Assert.False(fs.Connection!.PassthroughEnabled); // not asked for
        Assert.True(fs.ZeroMessageOpen);

        for (int i = 0; i < 2; i++)
        {
            TestData.AssertSameBytes(large, test.PathOf("large.bin"));
            TestData.AssertSameBytes(small, test.PathOf("small.bin"));
        }
        await Task.Delay(300, Ct);
        Assert.Equal(1, session.RequestCount(FuseOpcode.Open));
        Assert.Equal(0, session.RequestCount(FuseOpcode.Release));
        Assert.Equal(0, fs.OpenFiles);
        Assert.Equal(0, fs.PassthroughOpensServed);
    }

    [Fact(Timeout = 120_000)]
    public async Task Auto_ConcurrentFirstOpens_OfASmallAndALargeFile_AgreeOnOneMode_AndEveryByteIsRight()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        (string Name, byte[] Bytes)[] files = [("small.bin", TestData.Bytes(300_000, 91)), ("large.bin", TestData.Bytes((3 * MiB) + 11, 92))];
        Write(source, files);

        // A few fresh mounts, as each race is decided once per connection.
        for (int round = 0; round < 3; round++)
        {
            await using TestMount test = await TestMount.StartAsync("file://" + source.Path, hostOptions: SmallChunks, passthrough: PassthroughMode.Auto);
            DatasetFileSystem fs = test.Mount.FileSystem;
            FuseSession session = test.Mount.Session;
            RequirePassthroughAndNoOpen(test);
            Assert.Equal(FileOpenMode.FirstOpenDecides, fs.FileOpens);

            using var start = new Barrier(files.Length);
            await Task.WhenAll(files.Select(f => Task.Run(() =>
            {
                start.SignalAndWait(TimeSpan.FromSeconds(10), Ct);
                for (int i = 0; i < 3; i++)
                {
                    TestData.AssertSameBytes(f.Bytes, test.PathOf(f.Name));
                }
            }, Ct)));

            FileOpenMode mode = fs.FileOpens;
            TestContext.Current.TestOutputHelper?.WriteLine($"round {round}: {mode}, {session.RequestCount(FuseOpcode.Open)} OPEN");
            if (mode == FileOpenMode.ZeroMessage)
            {
                await Task.Delay(300, Ct);
                Assert.InRange(session.RequestCount(FuseOpcode.Open), 1, 2); // both first opens may have been sent before either was answered
                Assert.Equal(0, session.RequestCount(FuseOpcode.Release));
            }
            else
            {
                Assert.Equal(FileOpenMode.Open, mode);
                await WaitForAsync(() => fs.OpenFiles == 0);
                Assert.Equal(6, session.RequestCount(FuseOpcode.Open));
                Assert.Equal(6, session.RequestCount(FuseOpcode.Release));
            }
            Assert.Equal(0, fs.OpenFiles);
            foreach ((string name, byte[] bytes) in files)
            {
                Native.DropPageCache(test.PathOf(name));
                TestData.AssertSameBytes(bytes, test.PathOf(name));
            }
        }
    }

    private static void RequirePassthroughAndNoOpen(TestMount test)
    {
        if (test.Mount.FileSystem.Connection is not { PassthroughEnabled: true })
        {
            Assert.Fail("this kernel (6.9+) and root should negotiate FUSE_PASSTHROUGH; the Fuse layer did not");
        }
        Assert.True(test.Mount.Session.NoOpenSupported, "this kernel should offer FUSE_NO_OPEN_SUPPORT (7.23, Linux 3.14)");
    }

    /// <summary>Writes the files into the source directory and mounts it with 1 MiB chunks.</summary>
    private static Task<TestMount> MountAsync(TempDirectory source, PassthroughMode mode, params (string Name, byte[] Bytes)[] files)
    {
        Write(source, files);
        return TestMount.StartAsync("file://" + source.Path, hostOptions: SmallChunks, passthrough: mode);
    }

    private static void Write(TempDirectory source, params (string Name, byte[] Bytes)[] files)
    {
        foreach ((string name, byte[] bytes) in files)
        {
            File.WriteAllBytes(Path.Combine(source.Path, name), bytes);
        }
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, Ct);
        }
    }
}
