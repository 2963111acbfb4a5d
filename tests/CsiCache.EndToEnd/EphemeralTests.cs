using static CsiCache.EndToEnd.Datasets;

namespace CsiCache.EndToEnd;

/// <summary>
/// Inline ephemeral CSI volumes (a <c>csi:</c> volume in the pod spec): kubelet skips
/// CreateVolume and NodeStageVolume and calls NodePublishVolume with the attributes, the
/// <c>csi.storage.k8s.io/ephemeral: "true"</c> marker, SINGLE_NODE_WRITER and no staging path.
/// The plugin mounts the dataset's FUSE session directly at the target (read-only, whatever
/// the pod asked), and NodeUnpublishVolume stops it.
/// </summary>
public sealed class EphemeralTests(PluginFixture fixture) : IClassFixture<PluginFixture>
{
    private PluginProcess Plugin => fixture.Plugin;

    [Fact]
    public async Task InlineVolume_PublishMountsTheDatasetAtTheTarget_UnpublishStopsIt()
    {
        var data = Small(Path.Combine(Plugin.Root, "origins", "inline"), seed: 5);
        await using var kubelet = new Kubelet(Plugin);
        var (volumeId, target) = await kubelet.PublishInlineAsync(new Dictionary<string, string>
        {
            ["source"] = new Uri(data.Root + "/").AbsoluteUri,
        });

        var mount = HostMounts.At(target);
        Assert.NotNull(mount);
        Assert.True(mount.IsFuse, $"the target holds {mount.FileSystemType}, not the dataset's FUSE mount");
        AssertEveryByte(target, data);
        Assert.ThrowsAny<IOException>(() => File.WriteAllText(Path.Combine(target, "x"), "x"));

        var stats = await kubelet.StatsAsync(volumeId, target);
        Assert.False(stats.VolumeCondition.Abnormal, stats.VolumeCondition.Message);

        await kubelet.UnpublishAsync(volumeId, target);
        AssertNotMounted(target);
        Assert.False(Directory.Exists(target));
        Assert.DoesNotContain(HostMounts.Under(Plugin.Root), m => m.IsFuse);
    }

    [Fact]
    public async Task InlineVolume_WithoutSource_InvalidArgument_NothingMounted()
    {
        await using var kubelet = new Kubelet(Plugin);
        var error = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => kubelet.PublishInlineAsync(new Dictionary<string, string>()));
        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("source", error.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(HostMounts.Under(Plugin.Root), m => m.IsFuse);
    }
}
