using System.Diagnostics;

namespace CsiCache.Cache.Tests;

/// <summary>The same cache on a real tmpfs mount (the <c>cacheMedium: memory</c> case).</summary>
public sealed class TmpfsTests
{
    private const int MiB = 1 << 20;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task MemoryMedium_OnTmpfs_RoundTripsEvictsAndSurvivesReopen()
    {
        using var dir = new TempDirectory();
        string mountPoint = Path.Combine(dir.Path, "mnt");
        Directory.CreateDirectory(mountPoint);
        if (!await RunAsync("mount", "-t", "tmpfs", "-o", "size=32m", "csicache-test", mountPoint))
        {
            Assert.Skip("cannot mount tmpfs here (needs root / CAP_SYS_ADMIN)");
        }
        try
        {
            Assert.Contains($" {mountPoint} ", await File.ReadAllTextAsync("/proc/self/mountinfo", Ct));
            var options = new ChunkCacheOptions
            {
                RootDirectory = Path.Combine(mountPoint, "cache"),
                QuotaBytes = 8 * MiB,
                ChunkSize = MiB,
                Medium = CacheMedium.Memory,
            };
            var obj = new TestObject("tmpfs/object", 20 * MiB);
            using (var cache = new ChunkCache(options))
            {
                Assert.Equal(obj.Expected(0, (int)obj.Size), await obj.ReadAsync(cache, 0, (int)obj.Size));
                cache.Trim();
                Assert.True(cache.GetStats().UsedBytes <= options.QuotaBytes);
                Assert.Equal(CacheMedium.Memory, cache.GetStats().Medium);
            }
            long fetched = obj.Fetches;
            using (var reopened = new ChunkCache(options))
            {
                Assert.True(reopened.LoadedAtStart > 0);
                // The tail chunks were the last written, so they are still there.
                Assert.Equal(obj.Expected(obj.Size - 100, 100), await obj.ReadAsync(reopened, obj.Size - 100, 100));
                Assert.Equal(fetched, obj.Fetches);
            }
        }
        finally
        {
            Assert.True(await RunAsync("umount", mountPoint) || await RunAsync("umount", "-l", mountPoint));
        }
    }

    private static async Task<bool> RunAsync(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        try
        {
            using Process process = Process.Start(info)!;
            await process.WaitForExitAsync(Ct);
            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // no such program
        }
    }
}
