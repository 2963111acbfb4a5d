using CsiCache.Cache;
using CsiCache.Fuse;
using Microsoft.Extensions.Logging.Abstractions;

namespace CsiCache.Datasets.Tests;

public sealed class HotPathTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Read_CacheHit_AllocatesNothing()
    {
        var origin = new InMemoryOrigin();
        origin.AddFile("f.bin", 3 << 20);
        var tree = new DatasetTree(origin, refresh: null);
        using var temp = new TempDirectory("alloc");
        using var cache = new ChunkCache(new ChunkCacheOptions { RootDirectory = temp.Path, QuotaBytes = 64 << 20, ChunkSize = 1 << 20, FlushToDisk = false });
        var reader = new ChunkReader(cache, origin, new MountCounters(), prefetcher: null, 0, NullLogger.Instance, Ct);
        var fs = new DatasetFileSystem(tree, reader, NullLogger.Instance, Ct);
        Assert.Equal(Errno.Ok, fs.Lookup(1, "f.bin"u8, out FuseEntry entry));
        Assert.Equal(Errno.Ok, fs.Open(entry.NodeId, 0, out FuseOpenResult open));
        byte[] buffer = new byte[1 << 20];

        // Warm: fetch every chunk (the miss path allocates, by design) and JIT the hit path.
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(1 << 20, (await fs.ReadAsync(entry.NodeId, open.Handle, (long)i << 20, buffer, Ct)).BytesRead);
        }
        for (int i = 0; i < 50; i++)
        {
            ReadHit(fs, entry.NodeId, open.Handle, buffer, i);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            ReadHit(fs, entry.NodeId, open.Handle, buffer, i);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(3, origin.ReadCalls);
    }

    /// <summary>A read that straddles two chunks, answered synchronously.</summary>
    private static void ReadHit(DatasetFileSystem fs, ulong node, ulong handle, byte[] buffer, int i)
    {
        long offset = (512 << 10) + (i % 3 * 4096);
        ValueTask<FuseReadResult> read = fs.ReadAsync(node, handle, offset, buffer, CancellationToken.None);
        if (!read.IsCompletedSuccessfully || read.Result.BytesRead != buffer.Length)
        {
            Assert.Fail("a cache hit must complete synchronously with the whole buffer");
        }
        if (buffer[0] != (byte)(offset * 31 % 251))
        {
            Assert.Fail("wrong bytes");
        }
    }
}
