using System.Runtime.InteropServices;
using CsiCache.Cli.Demo;
using Grpc.Core;
using static CsiCache.EndToEnd.Datasets;

namespace CsiCache.EndToEnd;

/// <summary><c>cacheMedium: memory</c>: the node's tmpfs (<c>--memory-cache-dir</c>) holds the dataset's chunks.</summary>
public sealed class MemoryCacheTests
{
    [Fact]
    public async Task MemoryMedium_ChunksLandOnTheTmpfs_WarmPassMakesNoOriginRequests()
    {
        PluginProcess.RequireRoot();
        var tmpfs = Directory.CreateTempSubdirectory("csicache-e2e-tmpfs-").FullName;
        Assert.Equal(0, mount("tmpfs", tmpfs, "tmpfs", 0, "size=256m,mode=0700"));
        try
        {
            await using var plugin = await PluginProcess.StartAsync("--memory-cache-dir", tmpfs);
            var data = Small(Path.Combine(plugin.Root, "origins", "memory"), seed: 17);
            await using var origin = await HttpDatasetOrigin.StartAsync(data.Root, TestContext.Current.CancellationToken);
            await using var kubelet = new Kubelet(plugin);
            var volume = await kubelet.CreateDatasetAsync(origin.BaseUri.ToString(), ("cacheMedium", "memory"));
            var target = await kubelet.MountForPodAsync(volume);
            var diskBefore = DirectoryBytes(plugin.CacheDir);

            AssertEveryByte(target, data);
            // Chunks may be persisted just after the read that fetched them was answered: allow a moment.
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (DirectoryBytes(tmpfs) < data.TotalBytes && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100, TestContext.Current.CancellationToken);
            }

            Assert.True(DirectoryBytes(tmpfs) >= data.TotalBytes,
                $"the tmpfs holds {DirectoryBytes(tmpfs)} bytes after reading {data.TotalBytes}");
            var diskGrowth = DirectoryBytes(plugin.CacheDir) - diskBefore;
            Assert.True(diskGrowth < data.TotalBytes / 10, $"the disk cache grew by {diskGrowth} bytes: the chunks went to disk");

            var before = origin.RequestLog.Count;
            AssertEveryByte(target, data);
            var warm = origin.RequestLog.Skip(before).ToList();
            Assert.True(warm.Count == 0, $"the warm pass made {warm.Count} origin requests: {string.Join(", ", warm.Take(8))}");
        }
        finally
        {
            _ = umount2(tmpfs, 2);
            Directory.Delete(tmpfs, recursive: true);
        }
    }

    [Fact]
    public async Task MemoryMedium_NodeWithoutMemoryCache_InvalidArgument_SaysWhatToDo()
    {
        await using var plugin = await PluginProcess.StartAsync();
        var data = Small(Path.Combine(plugin.Root, "origins", "nomemory"), seed: 18);
        await using var kubelet = new Kubelet(plugin);
        var volume = await kubelet.CreateDatasetAsync(new Uri(data.Root + "/").AbsoluteUri, ("cacheMedium", "memory"));
        var error = await Assert.ThrowsAsync<RpcException>(() => kubelet.StageAsync(volume));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("--memory-cache-dir", error.Status.Detail, StringComparison.Ordinal);
        AssertNotMounted(plugin.Paths.StagingPath(volume.VolumeId));
    }

    private static long DirectoryBytes(string path) =>
        Directory.Exists(path) ? Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) : 0;

    [DllImport("libc", SetLastError = true)]
    private static extern int mount(string source, string target, string type, ulong flags, string? data);

    [DllImport("libc", SetLastError = true)]
    private static extern int umount2(string target, int flags);
}
