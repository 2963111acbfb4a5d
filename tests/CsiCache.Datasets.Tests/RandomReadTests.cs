using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Datasets.Tests;

/// <summary>
/// Random reads of a large file fetch only the blocks they read (chunks stored in part), and a
/// sequential reader still gets whole chunks, one GET each. Real FUSE mount over the in-process
/// HTTP origin; 4 MiB chunks (64 KiB blocks).
/// </summary>
[Collection(MountCollection.Name)]
public sealed class RandomReadTests
{
    private const int MiB = 1 << 20;
    private const int ChunkSize = 4 * MiB;
    private const int Block = ChunkSize / 64;
    private const int ReadSize = 256 << 10;

    [Fact(Timeout = 90_000)]
    public async Task RandomReads_FetchOnlyTheirBlocks_ReadAgainFromTheCache_AndASequentialReaderStillGetsWholeChunks()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        byte[] data = TestData.Bytes(6 * ChunkSize, 17);
        File.WriteAllBytes(Path.Combine(source.Path, "shard.tar"), data);
        await using HttpTestOrigin server = await HttpTestOrigin.StartAsync(source.Path);
        await using TestMount test = await TestMount.StartAsync(server.BaseUri.AbsoluteUri);
        string path = test.PathOf("shard.tar");

        // Page-aligned (O_DIRECT), never at a chunk's start, never in chunk 0 (always fetched whole).
        var rng = new Random(3);
        long[] offsets = Enumerable.Range(0, 40).Select(_ =>
        {
            long offset;
            do
            {
                offset = ChunkSize + (rng.NextInt64((5L * ChunkSize) - ReadSize) / 4096 * 4096);
            }
            while (offset % ChunkSize == 0);
            return offset;
        }).ToArray();

        ReadEach(path, offsets, data);
        List<OriginRequest> random = server.DataRequests("shard.tar");
        // Each read fetched its own blocks: a range of at most its length plus a block either side.
        Assert.NotEmpty(random);
        Assert.All(random, r => Assert.True(r.RangeEnd - r.RangeStart + 1 <= ReadSize + (2 * Block), $"fetched {r.RangeStart}-{r.RangeEnd}, more than the read's blocks"));
        Assert.All(random, r => Assert.True(r.RangeStart % Block == 0, $"range at {r.RangeStart} is not on a block"));
        long fetched = test.Mount.GetStats().OriginBytes;
        Assert.True(fetched <= offsets.Length * (ReadSize + Block), $"fetched {fetched} bytes for {offsets.Length} reads of {ReadSize}");

        // Again: every byte from the cache's partial chunks, once their stores behind the reads
        // are done (each holds its fetch buffer until then).
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (test.Host.DiskCache.Budget.InUseBytes != 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.Equal(0, test.Host.DiskCache.Budget.InUseBytes);
        int requests = server.RequestCount;
        Native.DropPageCache(path);
        ReadEach(path, offsets, data);
        Assert.Equal(requests, server.RequestCount);

        // A sequential reader over them: whole chunks, one GET per chunk.
        Assert.Equal(TestData.Sha256(data), Native.Sha256Direct(path));
        // The origin records a request once its response is sent, so a random read's record can land
        // after the list above was taken: tell the two kinds apart by size, not by position.
        List<OriginRequest> all = server.DataRequests("shard.tar");
        List<OriginRequest> sequential = all.Where(r => r.RangeEnd - r.RangeStart + 1 > ReadSize + (2 * Block)).ToList();
        Assert.Equal(Enumerable.Range(0, 6).Select(i => (long?)i * ChunkSize), sequential.Select(r => r.RangeStart).Order());
        Assert.All(sequential, r => Assert.Equal(ChunkSize - 1, r.RangeEnd - r.RangeStart));
        Assert.True(all.Count - sequential.Count <= offsets.Length * 2, $"{all.Count - sequential.Count} range requests for {offsets.Length} random reads");
    }

    /// <summary>One O_DIRECT open and read per offset (each read one READ at the server), checked against <paramref name="data"/>.</summary>
    private static unsafe void ReadEach(string path, long[] offsets, byte[] data)
    {
        byte* buffer = (byte*)NativeMemory.AlignedAlloc(ReadSize, 4096);
        try
        {
            foreach (long offset in offsets)
            {
                using SafeFileHandle handle = Native.OpenDirect(path);
                var span = new Span<byte>(buffer, ReadSize);
                Assert.Equal(ReadSize, RandomAccess.Read(handle, span, offset));
                Assert.True(data.AsSpan((int)offset, ReadSize).SequenceEqual(span), $"wrong bytes at {offset}");
            }
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }
}
