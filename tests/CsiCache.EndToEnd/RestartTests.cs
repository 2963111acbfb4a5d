using CsiCache.Cli.Demo;
using static CsiCache.EndToEnd.Datasets;

namespace CsiCache.EndToEnd;

/// <summary>The node plugin dies with its FUSE sessions; the next one must clean up and serve again.</summary>
public sealed class RestartTests
{
    [Fact]
    public async Task Crash_DeadFuseMountIsRemoved_AndKubeletsRetryStagesAgain()
    {
        await using var plugin = await PluginProcess.StartAsync();
        var data = Small(Path.Combine(plugin.Root, "origins", "restart"), seed: 123);
        await using var origin = await HttpDatasetOrigin.StartAsync(data.Root, TestContext.Current.CancellationToken);
        await using var kubelet = new Kubelet(plugin);
        var volume = await kubelet.CreateDatasetAsync(origin.BaseUri.ToString());
        var staging = await kubelet.StageAsync(volume);
        var target = await kubelet.PublishAsync(volume, staging);
        AssertEveryByte(target, data);

        await plugin.CrashAsync();
        Assert.True(HostMounts.At(staging)?.IsFuse, "the dead session's mount stays behind after a crash");
        await plugin.RestartAsync();

        // The new plugin removed the dead mount at the staging path before serving.
        AssertNotMounted(staging);
        Assert.Contains("removed a dead FUSE mount at " + staging, plugin.Log, StringComparison.Ordinal);

        // The pod goes; kubelet unpublishes the dead bind mount. The next pod stages afresh.
        await kubelet.UnpublishAsync(volume.VolumeId, target);
        await kubelet.UnstageAsync(volume.VolumeId, staging);
        AssertNotMounted(target, staging);
        AssertEveryByte(await kubelet.MountForPodAsync(volume), data);
    }

    [Fact]
    public async Task Sigterm_UnmountsEveryDataset()
    {
        await using var plugin = await PluginProcess.StartAsync();
        var data = Small(Path.Combine(plugin.Root, "origins", "sigterm"), seed: 321);
        var kubelet = new Kubelet(plugin);
        var volume = await kubelet.CreateDatasetAsync(new Uri(data.Root + "/").AbsoluteUri);
        var staging = await kubelet.StageAsync(volume);
        Assert.True(HostMounts.At(staging)?.IsFuse);

        Assert.Equal(0, await plugin.StopAsync());
        AssertNotMounted(staging);
        Assert.Contains("stopped 1 dataset session", plugin.Log, StringComparison.Ordinal);
    }
}
