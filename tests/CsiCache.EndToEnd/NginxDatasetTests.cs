using static CsiCache.EndToEnd.Datasets;

namespace CsiCache.EndToEnd;

/// <summary>
/// A dataset of thousands of files behind a real nginx autoindex, mounted through the CSI calls
/// kubelet makes: the HTML listings nginx writes (percent-encoded names, its date and size
/// columns) are parsed by our origin, not by a server of our own making. Needs root and nginx.
/// </summary>
public sealed class NginxDatasetTests(PluginFixture fixture) : IClassFixture<PluginFixture>
{
    private PluginProcess Plugin => fixture.Plugin;

    [Fact]
    public async Task ThousandsOfFiles_EveryByteMatches_WarmPassMakesNoRequest()
    {
        var root = Path.Combine(Plugin.Root, "nginx");
        var data = ManySmall(Path.Combine(root, "data"), files: 2500);
        await using var nginx = await NginxOrigin.StartAsync(data.Root, Path.Combine(root, "run"));
        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync(nginx.BaseUri.ToString());
        var target = await kubelet.MountForPodAsync(volume);

        var beforeCold = nginx.Requests;
        AssertEveryByte(target, data);
        Assert.True(nginx.Requests > beforeCold, "the cold pass must have read from nginx");

        var beforeWarm = nginx.Requests;
        AssertEveryByte(target, data); // page cache dropped: served from the node cache
        Assert.Equal(beforeWarm, nginx.Requests);
    }

    [Fact]
    public async Task QuotaBelowDatasetSize_ReadsCorrectly_AndCacheStaysWithinQuota()
    {
        // A plugin of its own with a 24 MiB cache for a dataset of about 60 MiB.
        await using var plugin = await PluginProcess.StartAsync("--cache-size", "24Mi");
        var root = Path.Combine(plugin.Root, "nginx");
        var data = Small(Path.Combine(root, "data"), seed: 5);
        var more = Enumerable.Range(0, 6).Select(i => ($"shards/big-{i}.bin", (8 << 20) + (i * 4099)));
        var dataset = Cli.Demo.SampleDataset.Generate(Path.Combine(root, "data2"), data.Files.Select(f => (f.RelativePath, (int)f.Size)).Concat(more), seed: 5);
        Assert.True(dataset.TotalBytes > 48L << 20, $"the dataset ({dataset.TotalBytes} bytes) must be well over the quota");
        await using var nginx = await NginxOrigin.StartAsync(dataset.Root, Path.Combine(root, "run"));
        await using var kubelet = new Kubelet(plugin);
        var target = await kubelet.MountForPodAsync(await kubelet.CreateDatasetAsync(nginx.BaseUri.ToString()));

        AssertEveryByte(target, dataset);
        AssertEveryByte(target, dataset);
        // The object files are sparse where chunks were evicted and fetched again: count what they occupy.
        long cacheBytes = DiskUsage.AllocatedBytes(plugin.CacheDir);
        Assert.True(cacheBytes <= (24L << 20) + (1L << 20), $"the cache occupies {cacheBytes} bytes, over its 24 MiB quota (+1 MiB of markers and folders)");
    }
}
