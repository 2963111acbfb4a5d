using Grpc.Core;
using static CsiCache.EndToEnd.Datasets;

namespace CsiCache.EndToEnd;

/// <summary>Dataset volumes over a directory on the node (file://: an NFS mount or a host path).</summary>
public sealed class PosixDatasetTests(PluginFixture fixture) : IClassFixture<PluginFixture>
{
    private PluginProcess Plugin => fixture.Plugin;

    [Fact]
    public async Task KubeletSequence_EveryByteMatches_TwiceThroughTwoPods()
    {
        var data = Small(Path.Combine(Plugin.Root, "origins", "posix"), seed: 77);
        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync(new Uri(data.Root + "/").AbsoluteUri);
        var staging = await kubelet.StageAsync(volume);
        var podA = await kubelet.PublishAsync(volume, staging);
        var podB = await kubelet.PublishAsync(volume, staging);

        AssertEveryByte(podA, data);
        AssertEveryByte(podB, data);

        // Read-only all the way down: a pod cannot write into a dataset.
        Assert.ThrowsAny<IOException>(() => File.WriteAllText(Path.Combine(podA, "new-file"), "x"));
        Assert.False(File.Exists(Path.Combine(data.Root, "new-file")));

        await kubelet.UnpublishAsync(volume.VolumeId, podA);
        AssertEveryByte(podB, data);
        await kubelet.UnpublishAsync(volume.VolumeId, podB);
        await kubelet.UnstageAsync(volume.VolumeId, staging);
        AssertNotMounted(podA, podB, staging);
    }

    [Fact]
    public async Task Stage_MissingDirectory_NotFound()
    {
        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync(new Uri(Path.Combine(Plugin.Root, "no-such-dataset") + "/").AbsoluteUri);
        var error = await Assert.ThrowsAsync<RpcException>(() => kubelet.StageAsync(volume));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        AssertNotMounted(Plugin.Paths.StagingPath(volume.VolumeId));
    }

    [Fact]
    public async Task Stage_Twice_IsIdempotent_AndUnstageTwiceToo()
    {
        var data = Small(Path.Combine(Plugin.Root, "origins", "idempotent"), seed: 88);
        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync(new Uri(data.Root + "/").AbsoluteUri);
        var staging = await kubelet.StageAsync(volume);
        Assert.Equal(staging, await kubelet.StageAsync(volume));
        Assert.Single(HostMounts.All(), m => m.MountPoint == staging);

        await kubelet.UnstageAsync(volume.VolumeId, staging);
        await kubelet.UnstageAsync(volume.VolumeId, staging);
        AssertNotMounted(staging);
    }
}
