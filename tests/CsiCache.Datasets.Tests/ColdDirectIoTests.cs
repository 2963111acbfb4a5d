using CsiCache.Fuse;
using CsiCache.Fuse.Protocol;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Datasets.Tests;

/// <summary>
/// Opens of files the cache holds nothing of get FOPEN_DIRECT_IO where OPEN is kept (here:
/// passthrough Always), until a direct handle shows small reads. Real mounts, 1 MiB chunks.
/// </summary>
[Collection(MountCollection.Name)]
public sealed class ColdDirectIoTests
{
    private const int MiB = 1 << 20;

    private static readonly Func<TempDirectory, DatasetHostOptions> SmallChunks =
        t => TestMount.HostOptions(t, chunkSize: MiB) with { OriginTimeout = TimeSpan.FromSeconds(30) };

    [Fact(Timeout = 90_000)]
    public async Task ColdOpen_IsDirect_OneReadPerReadCall_AndOnceCachedTheNextOpenIsNot()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] large = TestData.Bytes((3 * MiB) + 5, 71);
        byte[] whole = TestData.Bytes((2 * MiB) + 9, 73);
        await using TestMount test = await MountAsync(source, coldDirectIo: true, ("large.bin", large), ("whole.bin", whole));
        DatasetFileSystem fs = test.Mount.FileSystem;
        FuseSession session = test.Mount.Session;
        RequireDirectIoMmap(test);
        Assert.True(fs.ColdDirectIo);

        using (SafeFileHandle handle = File.OpenHandle(test.PathOf("large.bin")))
        {
            Assert.Equal(1, fs.ColdDirectOpens);
            var buffer = new byte[300_000]; // neither page-sized nor page-aligned
            long before = session.RequestCount(FuseOpcode.Read);
            Assert.Equal(buffer.Length, RandomAccess.Read(handle, buffer, 1_000_001));
            Assert.True(large.AsSpan(1_000_001, buffer.Length).SequenceEqual(buffer), "wrong bytes from a direct read");
            // One READ of exactly this read(2): through the page cache it would be page-aligned
            // READs plus the kernel's read-ahead.
            Assert.Equal(before + 1, session.RequestCount(FuseOpcode.Read));
            // The same range again is another READ: no page cache in between.
            Assert.Equal(buffer.Length, RandomAccess.Read(handle, buffer, 1_000_001));
            Assert.Equal(before + 2, session.RequestCount(FuseOpcode.Read));
        }

        // Part of it is cached now, but it was read at random (fetched in ranges): its next open
        // skips the page cache too, so each pread is one READ, not READs plus read-ahead.
        TestData.AssertSameBytes(large, test.PathOf("large.bin"));
        Assert.Equal(2, fs.ColdDirectOpens);
        Assert.True(fs.ColdDirectIo, "reads of 300,000 bytes are not small");

        // Read from its start (whole chunks, no ranges): once cached, the next open uses the page
        // cache (or passthrough) again.
        TestData.AssertSameBytes(whole, test.PathOf("whole.bin"));
        Assert.Equal(3, fs.ColdDirectOpens);
        TestData.AssertSameBytes(whole, test.PathOf("whole.bin"));
        Assert.Equal(3, fs.ColdDirectOpens);
    }

    [Fact(Timeout = 90_000)]
    public async Task ColdDirectOpen_CanBeMappedShared()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] large = TestData.Bytes((2 * MiB) + 4097, 72);
        await using TestMount test = await MountAsync(source, coldDirectIo: true, ("large.bin", large));
        RequireDirectIoMmap(test);

        // Another process opens the file (cold: direct) and maps it MAP_SHARED, which the kernel
        // refuses (ENODEV) for a direct open unless FUSE_DIRECT_IO_ALLOW_MMAP was granted. Not this
        // process: a page fault of the FUSE server's own memory on its own mount can deadlock on
        // the mm lock, which is why a server never maps its own files.
        var python = new System.Diagnostics.ProcessStartInfo("python3")
        {
            ArgumentList =
            {
                "-c",
                "import hashlib, mmap, sys\n"
                + "f = open(sys.argv[1], 'rb')\n"
                + "m = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)\n"
                + "print(len(m), hashlib.sha256(m[:]).hexdigest())",
                test.PathOf("large.bin"),
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = System.Diagnostics.Process.Start(python)!;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw;
        }
        string output = (await process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken)).Trim();
        string errors = await process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        Assert.True(process.ExitCode == 0, $"python3 mmap failed ({process.ExitCode}): {errors}");
        Assert.Equal($"{large.Length} {Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(large))}", output);
        Assert.Equal(1, test.Mount.FileSystem.ColdDirectOpens);
    }

    [Fact(Timeout = 90_000)]
    public async Task SmallReadsOnADirectHandle_TurnColdDirectOpensOffForTheMount()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] first = TestData.Bytes((2 * MiB) + 11, 73);
        byte[] second = TestData.Bytes((2 * MiB) + 13, 74);
        await using TestMount test = await MountAsync(source, coldDirectIo: true, ("first.bin", first), ("second.bin", second));
        DatasetFileSystem fs = test.Mount.FileSystem;
        RequireDirectIoMmap(test);

        using (SafeFileHandle handle = File.OpenHandle(test.PathOf("first.bin")))
        {
            Assert.Equal(1, fs.ColdDirectOpens);
            var piece = new byte[4096];
            for (int i = 0; i < DatasetFileSystem.DirectIoVerdictReads; i++)
            {
                Assert.True(fs.ColdDirectIo, $"turned off after only {i} reads");
                Assert.Equal(piece.Length, RandomAccess.Read(handle, piece, i * 4096L));
                Assert.True(first.AsSpan(i * 4096, 4096).SequenceEqual(piece), $"wrong bytes in piece {i}");
            }
        }
        Assert.False(fs.ColdDirectIo, "16 reads of 4 KiB should have turned cold direct opens off");

        // Another file of which nothing is cached: opened through the page cache now.
        TestData.AssertSameBytes(second, test.PathOf("second.bin"));
        Assert.Equal(1, fs.ColdDirectOpens);
    }

    [Fact(Timeout = 90_000)]
    public async Task ColdDirectIo_OffOnTheHost_GivesNoDirectOpens()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] large = TestData.Bytes((2 * MiB) + 3, 75);
        await using TestMount test = await MountAsync(source, coldDirectIo: false, ("large.bin", large));

        TestData.AssertSameBytes(large, test.PathOf("large.bin"));
        Assert.False(test.Mount.FileSystem.ColdDirectIo);
        Assert.Equal(0, test.Mount.FileSystem.ColdDirectOpens);
        Assert.True(test.Mount.Session.RequestCount(FuseOpcode.Open) >= 1, "OPEN is kept (passthrough Always), so direct opens were possible");
    }

    private static void RequireDirectIoMmap(TestMount test) =>
        Assert.True(test.Mount.FileSystem.Connection is { DirectIoMmapAllowed: true }, "this kernel (6.6+) should grant FUSE_DIRECT_IO_ALLOW_MMAP");

    /// <summary>Writes the files and mounts them with 1 MiB chunks and OPEN kept for every file (passthrough Always).</summary>
    private static Task<TestMount> MountAsync(TempDirectory source, bool coldDirectIo, params (string Name, byte[] Bytes)[] files)
    {
        foreach ((string name, byte[] bytes) in files)
        {
            File.WriteAllBytes(Path.Combine(source.Path, name), bytes);
        }
        return TestMount.StartAsync("file://" + source.Path, hostOptions: SmallChunks, passthrough: PassthroughMode.Always, coldDirectIo: coldDirectIo);
    }
}
