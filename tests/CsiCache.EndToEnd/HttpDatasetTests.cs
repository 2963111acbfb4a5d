using System.Diagnostics;
using CsiCache.Cli.Demo;
using Grpc.Core;
using static CsiCache.EndToEnd.Datasets;

namespace CsiCache.EndToEnd;

/// <summary>Dataset volumes over the embedded HTTP origin (nginx-style autoindex, Range, ETag), through the real socket.</summary>
public sealed class HttpDatasetTests(PluginFixture fixture) : IClassFixture<PluginFixture>
{
    private PluginProcess Plugin => fixture.Plugin;

    private async Task<(SampleDataset Data, HttpDatasetOrigin Origin)> OriginAsync(string name, Func<string, SampleDataset>? make = null)
    {
        var data = (make ?? (r => Small(r)))(Path.Combine(Plugin.Root, "origins", name));
        return (data, await HttpDatasetOrigin.StartAsync(data.Root, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task KubeletSequence_ColdThenWarm_EveryByteMatches_WarmPassMakesNoOriginRequests()
    {
        var (data, origin) = await OriginAsync("imagenet", r => SampleDataset.Generate(r, SampleDatasetSpec.Demo));
        await using var _ = origin;
        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync(origin.BaseUri.ToString());
        var staging = await kubelet.StageAsync(volume);
        var target = await kubelet.PublishAsync(volume, staging);
        Assert.True(HostMounts.At(staging)!.IsFuse);
        Assert.True(HostMounts.At(target)!.IsFuse, "the target must be a bind mount of the dataset's FUSE mount");

        var beforeCold = origin.Requests;
        AssertEveryByte(target, data);
        var cold = origin.Requests - beforeCold;
        Assert.True(cold > 0, "a cold read must have gone to the origin");
        Assert.True(origin.BytesRequested >= data.TotalBytes, $"the origin served {origin.BytesRequested} bytes of {data.TotalBytes}");

        var beforeWarm = origin.Requests;
        AssertEveryByte(target, data);
        Assert.Equal(0, origin.Requests - beforeWarm);

        await kubelet.UnpublishAsync(volume.VolumeId, target);
        await kubelet.UnstageAsync(volume.VolumeId, staging);
        AssertNotMounted(target, staging);
        Assert.False(Directory.Exists(target), "NodeUnpublishVolume removes the target it was given");
        Assert.Empty(HostMounts.Under(Plugin.Root));
    }

    [Fact]
    public async Task TwoVolumesOfOneDataset_ShareTheNodeCache()
    {
        var (data, origin) = await OriginAsync("shared", r => Small(r, seed: 21));
        await using var _ = origin;
        await using var kubelet = new Kubelet(Plugin);
        var first = await kubelet.CreateDatasetAsync(origin.BaseUri.ToString());
        var second = await kubelet.CreateDatasetAsync(origin.BaseUri.ToString());
        Assert.NotEqual(first.VolumeId, second.VolumeId);

        var firstStaging = await kubelet.StageAsync(first);
        var firstTarget = await kubelet.PublishAsync(first, firstStaging);
        AssertEveryByte(firstTarget, data);
        var dataBytesAfterFirst = origin.BytesRequested;

        var secondStaging = await kubelet.StageAsync(second);
        var secondTarget = await kubelet.PublishAsync(second, secondStaging);
        var before = origin.RequestLog.Count;
        AssertEveryByte(secondTarget, data);
        // Data: not one byte fetched again. Metadata (listings, HEADs) too: the second volume's
        // cold pass is served wholly by the node.
        Assert.Equal(dataBytesAfterFirst, origin.BytesRequested);
        var requests = origin.RequestLog.Skip(before).ToList();
        Assert.True(requests.Count == 0,
            $"the second volume's cold pass made {requests.Count} origin requests: {string.Join(", ", requests.Take(8))} …");

        // The first volume goes; the second keeps serving (the dataset's session outlives any one volume).
        await kubelet.UnpublishAsync(first.VolumeId, firstTarget);
        await kubelet.UnstageAsync(first.VolumeId, firstStaging);
        AssertNotMounted(firstTarget, firstStaging);
        AssertEveryByte(secondTarget, data);

        // The last volume goes: no FUSE mount of this dataset is left anywhere under the plugin's root.
        await kubelet.UnpublishAsync(second.VolumeId, secondTarget);
        await kubelet.UnstageAsync(second.VolumeId, secondStaging);
        Assert.DoesNotContain(HostMounts.Under(Plugin.Root), m => m.IsFuse);
    }

    [Fact]
    public async Task NodeGetVolumeStats_ReportsCacheUse_ThenAbnormalWhenTheFuseSessionDies()
    {
        var (data, origin) = await OriginAsync("stats", r => Small(r, seed: 33));
        await using var _ = origin;
        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync(origin.BaseUri.ToString());
        var staging = await kubelet.StageAsync(volume);
        var target = await kubelet.PublishAsync(volume, staging);

        var fresh = await kubelet.StatsAsync(volume.VolumeId, target);
        Assert.False(fresh.VolumeCondition.Abnormal, fresh.VolumeCondition.Message);
        var usedBefore = fresh.Usage.Single(u => u.Unit == global::Csi.V1.VolumeUsage.Types.Unit.Bytes).Used;
        Assert.True(usedBefore < data.TotalBytes, $"nothing read yet, but {usedBefore} bytes reported cached");

        AssertEveryByte(target, data);
        var read = await kubelet.StatsAsync(volume.VolumeId, target);
        Assert.False(read.VolumeCondition.Abnormal, read.VolumeCondition.Message);
        var used = read.Usage.Single(u => u.Unit == global::Csi.V1.VolumeUsage.Types.Unit.Bytes).Used;
        Assert.True(used >= data.TotalBytes, $"every byte was read, so the cache holds at least {data.TotalBytes}, but {used} reported");

        HostMounts.AbortFuseConnection(staging);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        global::Csi.V1.NodeGetVolumeStatsResponse stats;
        do
        {
            await Task.Delay(100, TestContext.Current.CancellationToken);
            stats = await kubelet.StatsAsync(volume.VolumeId, target);
        }
        while (!stats.VolumeCondition.Abnormal && DateTime.UtcNow < deadline);

        Assert.True(stats.VolumeCondition.Abnormal, "the FUSE connection is aborted, yet the volume reports healthy");
        Assert.Contains("FUSE", stats.VolumeCondition.Message, StringComparison.Ordinal);

        // kubelet can still take it down.
        await kubelet.UnpublishAsync(volume.VolumeId, target);
        await kubelet.UnstageAsync(volume.VolumeId, staging);
        AssertNotMounted(target, staging);
    }

    [Fact]
    public async Task Stage_UnreachableOrigin_UnavailableWithinBound_NothingMounted()
    {
        // A port that was just free: connection refused, as for an origin that is down.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync($"http://127.0.0.1:{port}/dataset/");
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<RpcException>(() => kubelet.StageAsync(volume));
        clock.Stop();

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(100), $"stage took {clock.Elapsed} to fail");
        AssertNotMounted(Plugin.Paths.StagingPath(volume.VolumeId));
        Assert.DoesNotContain(HostMounts.Under(Plugin.Root), m => m.IsFuse);
    }

    [Fact]
    public async Task Stage_OriginAnswers503_Unavailable_ThenStagesOnceItIsBack()
    {
        var (data, origin) = await OriginAsync("maintenance", r => Small(r, seed: 44));
        await using var _ = origin;
        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync(origin.BaseUri.ToString());

        origin.Unavailable = true;
        var error = await Assert.ThrowsAsync<RpcException>(() => kubelet.StageAsync(volume));
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        AssertNotMounted(Plugin.Paths.StagingPath(volume.VolumeId));

        // kubelet retries with back-off; the origin is back.
        origin.Unavailable = false;
        AssertEveryByte(await kubelet.MountForPodAsync(volume), data);
    }

    [Fact]
    public async Task Stage_MissingDirectory_NotFound_NothingMounted()
    {
        var (_, origin) = await OriginAsync("missing", r => Small(r, seed: 55));
        await using var __ = origin;
        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync(origin.UriOf("no-such-directory/").ToString());
        var error = await Assert.ThrowsAsync<RpcException>(() => kubelet.StageAsync(volume));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        AssertNotMounted(Plugin.Paths.StagingPath(volume.VolumeId));
    }

    [Fact]
    public async Task SubPath_ShowsOnlyThatDirectory()
    {
        var (data, origin) = await OriginAsync("subpath", r => Small(r, seed: 66));
        await using var _ = origin;
        var subPath = Path.GetDirectoryName(data.Files[0].RelativePath)!;
        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync(origin.BaseUri.ToString(), ("subPath", subPath));
        var target = await kubelet.MountForPodAsync(volume);

        var inside = data.Files.Where(f => f.RelativePath.StartsWith(subPath + "/", StringComparison.Ordinal))
            .Select(f => f with { RelativePath = f.RelativePath[(subPath.Length + 1)..] }).ToList();
        Assert.Equal(inside.Select(f => f.RelativePath).Order(StringComparer.Ordinal), DatasetReader.List(target));
        AssertEveryByte(target, data, inside);
    }
}
