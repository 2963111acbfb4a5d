using Csi.V1;
using Grpc.Core;
using static CsiCache.Conformance.Requests;
using Mode = Csi.V1.VolumeCapability.Types.AccessMode.Types.Mode;
using RpcType = Csi.V1.NodeServiceCapability.Types.RPC.Types.Type;

namespace CsiCache.Conformance;

/// <summary>The Node service as kubelet drives it, with real loop mounts and bind mounts. Needs root.</summary>
public sealed class NodeTests(DriverFixture fixture) : IClassFixture<DriverFixture>
{
    private readonly PluginProcess _driver = fixture.Driver;
    private global::Csi.V1.Node.NodeClient Node => _driver.Node;

    private async Task<string> CreateAsync(string prefix, long bytes = 32 * MiB) =>
        (await _driver.Controller.CreateVolumeAsync(CreateLocal(UniqueName(prefix), bytes))).Volume.VolumeId;

    private Task StageAsync(string volumeId, string staging, params string[] flags) =>
        Node.NodeStageVolumeAsync(new NodeStageVolumeRequest
        {
            VolumeId = volumeId, StagingTargetPath = staging, VolumeCapability = Mount(Mode.SingleNodeWriter, flags),
        }).ResponseAsync;

    private Task PublishAsync(string volumeId, string staging, string target, bool readOnly = false) =>
        Node.NodePublishVolumeAsync(new NodePublishVolumeRequest
        {
            VolumeId = volumeId, StagingTargetPath = staging, TargetPath = target, Readonly = readOnly,
            VolumeCapability = Mount(),
        }).ResponseAsync;

    private Task UnpublishAsync(string volumeId, string target) =>
        Node.NodeUnpublishVolumeAsync(new NodeUnpublishVolumeRequest { VolumeId = volumeId, TargetPath = target }).ResponseAsync;

    private Task UnstageAsync(string volumeId, string staging) =>
        Node.NodeUnstageVolumeAsync(new NodeUnstageVolumeRequest { VolumeId = volumeId, StagingTargetPath = staging }).ResponseAsync;

    private Task DeleteAsync(string volumeId) =>
        _driver.Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = volumeId }).ResponseAsync;

    [Fact]
    public async Task NodeGetInfo_ReportsNodeAndTopology()
    {
        var info = await Node.NodeGetInfoAsync(new NodeGetInfoRequest());
        Assert.Equal(_driver.NodeId, info.NodeId);
        Assert.Equal(_driver.NodeId, info.AccessibleTopology.Segments["topology.csicache.dev/node"]);
        Assert.True(info.MaxVolumesPerNode >= 0);
    }

    [Fact]
    public async Task NodeGetCapabilities_StageStatsCondition()
    {
        var caps = await Node.NodeGetCapabilitiesAsync(new NodeGetCapabilitiesRequest());
        Assert.Equal(
            new HashSet<RpcType> { RpcType.StageUnstageVolume, RpcType.GetVolumeStats, RpcType.VolumeCondition },
            caps.Capabilities.Select(c => c.Rpc.Type).ToHashSet());
    }

    public static TheoryData<string, string> MissingFields => new()
    {
        { "stage", "volume_id" }, { "stage", "staging_target_path" }, { "stage", "volume_capability" },
        { "unstage", "volume_id" }, { "unstage", "staging_target_path" },
        { "publish", "volume_id" }, { "publish", "target_path" }, { "publish", "volume_capability" },
        { "publish", "staging_target_path" },
        { "unpublish", "volume_id" }, { "unpublish", "target_path" },
        { "stats", "volume_id" }, { "stats", "volume_path" },
    };

    [Theory]
    [MemberData(nameof(MissingFields))]
    public async Task NodeCall_MissingField_InvalidArgumentNamingIt(string call, string field)
    {
        const string id = "local-00000000000000000000000000000000";
        string Keep(string name, string value) => name == field ? "" : value;
        var capability = field == "volume_capability" ? null : Mount();
        var staging = Path.Combine(_driver.Root, "missing-field-staging");
        var target = Path.Combine(_driver.Root, "missing-field-target");
        Status status = call switch
        {
            "stage" => await FailsAsync(() => Node.NodeStageVolumeAsync(new NodeStageVolumeRequest
            {
                VolumeId = Keep("volume_id", id), StagingTargetPath = Keep("staging_target_path", staging), VolumeCapability = capability,
            })),
            "unstage" => await FailsAsync(() => Node.NodeUnstageVolumeAsync(new NodeUnstageVolumeRequest
            {
                VolumeId = Keep("volume_id", id), StagingTargetPath = Keep("staging_target_path", staging),
            })),
            "publish" => await FailsAsync(() => Node.NodePublishVolumeAsync(new NodePublishVolumeRequest
            {
                VolumeId = Keep("volume_id", id), TargetPath = Keep("target_path", target),
                StagingTargetPath = Keep("staging_target_path", staging), VolumeCapability = capability,
            })),
            "unpublish" => await FailsAsync(() => Node.NodeUnpublishVolumeAsync(new NodeUnpublishVolumeRequest
            {
                VolumeId = Keep("volume_id", id), TargetPath = Keep("target_path", target),
            })),
            _ => await FailsAsync(() => Node.NodeGetVolumeStatsAsync(new NodeGetVolumeStatsRequest
            {
                VolumeId = Keep("volume_id", id), VolumePath = Keep("volume_path", target),
            })),
        };
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
        Assert.Contains(field, status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NodeStage_UnknownVolume_NotFound()
    {
        var staging = StagingPath(_driver, "local-11111111111111111111111111111111");
        var status = await FailsAsync(() => Node.NodeStageVolumeAsync(new NodeStageVolumeRequest
        {
            VolumeId = "local-11111111111111111111111111111111", StagingTargetPath = staging, VolumeCapability = Mount(),
        }));
        Assert.Equal(StatusCode.NotFound, status.StatusCode);
        Assert.DoesNotContain(staging, HostMounts.MountPointsUnder(_driver.Root));
    }

    [Fact]
    public async Task NodeGetVolumeStats_UnknownVolumeOrPath_NotFound()
    {
        var unknown = await FailsAsync(() => Node.NodeGetVolumeStatsAsync(new NodeGetVolumeStatsRequest
        {
            VolumeId = "local-22222222222222222222222222222222", VolumePath = "some/path",
        }));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);

        var id = await CreateAsync("stats-path");
        var wrongPath = await FailsAsync(() => Node.NodeGetVolumeStatsAsync(new NodeGetVolumeStatsRequest
        {
            VolumeId = id, VolumePath = "some/path",
        }));
        Assert.Equal(StatusCode.NotFound, wrongPath.StatusCode);
        await DeleteAsync(id);
    }

    [Fact]
    public async Task NodePublish_BeforeStage_FailedPrecondition()
    {
        var id = await CreateAsync("unstaged");
        var status = await FailsAsync(() => Node.NodePublishVolumeAsync(new NodePublishVolumeRequest
        {
            VolumeId = id, StagingTargetPath = StagingPath(_driver, id), TargetPath = TargetPath(_driver, "pv-unstaged"),
            VolumeCapability = Mount(),
        }));
        Assert.Equal(StatusCode.FailedPrecondition, status.StatusCode);
        await DeleteAsync(id);
    }

    [Fact]
    public async Task FullCycle_DataWrittenInOnePublishIsReadInTheNext_AndNothingIsLeft()
    {
        var id = await CreateAsync("cycle", 64 * MiB);
        var staging = StagingPath(_driver, id);
        var firstTarget = TargetPath(_driver, "pv-cycle");
        var secondTarget = TargetPath(_driver, "pv-cycle");
        var payload = new byte[3 * 1024 * 1024 + 17];
        new Random(42).NextBytes(payload);

        await StageAsync(id, staging);
        await StageAsync(id, staging); // kubelet retries: a second stage is a no-op
        await PublishAsync(id, staging, firstTarget);
        await PublishAsync(id, staging, firstTarget); // and so is a second publish
        await File.WriteAllBytesAsync(Path.Combine(firstTarget, "data.bin"), payload);
        Assert.Single(HostMounts.LoopsBackedUnder(_driver.Root), l => l.StartsWith("/dev/loop", StringComparison.Ordinal));
        await UnpublishAsync(id, firstTarget);
        Assert.False(Directory.Exists(firstTarget), "unpublish removes the target it created");
        await UnpublishAsync(id, firstTarget); // already gone: still OK

        await PublishAsync(id, staging, secondTarget);
        Assert.Equal(payload, await File.ReadAllBytesAsync(Path.Combine(secondTarget, "data.bin")));

        var stats = await Node.NodeGetVolumeStatsAsync(new NodeGetVolumeStatsRequest { VolumeId = id, VolumePath = secondTarget });
        var bytes = stats.Usage.Single(u => u.Unit == VolumeUsage.Types.Unit.Bytes);
        var inodes = stats.Usage.Single(u => u.Unit == VolumeUsage.Types.Unit.Inodes);
        Assert.False(stats.VolumeCondition.Abnormal);
        Assert.InRange(bytes.Total, 32 * MiB, 64 * MiB);
        Assert.True(bytes.Used >= payload.Length, $"used {bytes.Used} should count the {payload.Length}-byte file");
        Assert.True(inodes.Total > 0 && inodes.Used > 0);

        await UnpublishAsync(id, secondTarget);
        await UnstageAsync(id, staging);
        await UnstageAsync(id, staging); // idempotent
        await DeleteAsync(id);

        Assert.Empty(HostMounts.MountPointsUnder(_driver.Root));
        Assert.Empty(HostMounts.LoopsBackedUnder(_driver.Root));
        Assert.False(File.Exists(Path.Combine(_driver.LocalDir, id + ".img")));
    }

    [Fact]
    public async Task NodePublish_ReadOnly_RefusesWrites()
    {
        var id = await CreateAsync("ro");
        var staging = StagingPath(_driver, id);
        var target = TargetPath(_driver, "pv-ro");
        try
        {
            await StageAsync(id, staging);
            await PublishAsync(id, staging, target, readOnly: true);
            var error = Assert.ThrowsAny<IOException>(() => File.WriteAllText(Path.Combine(target, "x"), "x"));
            Assert.Contains("Read-only", error.Message, StringComparison.OrdinalIgnoreCase);

            var status = await FailsAsync(() => Node.NodePublishVolumeAsync(new NodePublishVolumeRequest
            {
                VolumeId = id, StagingTargetPath = staging, TargetPath = target, Readonly = false, VolumeCapability = Mount(),
            }));
            Assert.Equal(StatusCode.AlreadyExists, status.StatusCode);
        }
        finally
        {
            await UnpublishAsync(id, target);
            await UnstageAsync(id, staging);
            await DeleteAsync(id);
        }
    }

    [Fact]
    public async Task NodeStage_MountFlags_HonouredAndUnsafeOnesRefused()
    {
        var id = await CreateAsync("flags");
        var staging = StagingPath(_driver, id);
        try
        {
            var status = await FailsAsync(() => Node.NodeStageVolumeAsync(new NodeStageVolumeRequest
            {
                VolumeId = id, StagingTargetPath = staging, VolumeCapability = Mount(Mode.SingleNodeWriter, "noatime;reboot"),
            }));
            Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
            status = await FailsAsync(() => Node.NodeStageVolumeAsync(new NodeStageVolumeRequest
            {
                VolumeId = id, StagingTargetPath = staging, VolumeCapability = Mount(Mode.SingleNodeWriter, "offset=4096"),
            }));
            Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);

            await StageAsync(id, staging, "noexec");
            var line = File.ReadLines("/proc/self/mountinfo").Single(l => l.Split(' ')[4] == staging);
            Assert.Contains("noexec", line.Split(' ')[5], StringComparison.Ordinal);
        }
        finally
        {
            await UnstageAsync(id, staging);
            await DeleteAsync(id);
        }
    }

    [Fact]
    public async Task DeleteVolume_WhileStaged_FailedPrecondition()
    {
        var id = await CreateAsync("busy");
        var staging = StagingPath(_driver, id);
        await StageAsync(id, staging);
        try
        {
            var status = await FailsAsync(() => _driver.Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = id }));
            Assert.Equal(StatusCode.FailedPrecondition, status.StatusCode);
            Assert.True(File.Exists(Path.Combine(_driver.LocalDir, id + ".img")));
        }
        finally
        {
            await UnstageAsync(id, staging);
            await DeleteAsync(id);
        }
    }

    [Fact]
    public async Task NodeGetVolumeStats_MountGone_ReportsAbnormal()
    {
        var id = await CreateAsync("gone");
        var staging = StagingPath(_driver, id);
        var target = TargetPath(_driver, "pv-gone");
        await StageAsync(id, staging);
        await PublishAsync(id, staging, target);
        try
        {
            // Somebody unmounts the pod's volume behind our back.
            Assert.Equal(0, umount2(target, 0));
            var stats = await Node.NodeGetVolumeStatsAsync(new NodeGetVolumeStatsRequest { VolumeId = id, VolumePath = target });
            Assert.True(stats.VolumeCondition.Abnormal);
            Assert.Contains("no longer mounted", stats.VolumeCondition.Message, StringComparison.Ordinal);
        }
        finally
        {
            await UnpublishAsync(id, target);
            await UnstageAsync(id, staging);
            await DeleteAsync(id);
        }
    }

    [Fact]
    public async Task NodeStage_DatasetWithoutDatasetSupport_ClearErrorNoMount()
    {
        var created = await _driver.Controller.CreateVolumeAsync(CreateDataset(UniqueName("ds-stage"), "https://127.0.0.1:1/data/"));
        var id = created.Volume.VolumeId;
        var staging = StagingPath(_driver, id);
        var request = new NodeStageVolumeRequest
        {
            VolumeId = id, StagingTargetPath = staging, VolumeCapability = Mount(Mode.MultiNodeReaderOnly),
        };
        request.VolumeContext.Add(created.Volume.VolumeContext);
        request.Secrets["secretAccessKey"] = "do-not-log-this-s3cr3t";
        try
        {
            var status = await FailsAsync(() => Node.NodeStageVolumeAsync(request));
            Assert.NotEqual(StatusCode.OK, status.StatusCode);
            Assert.NotEqual(StatusCode.Unknown, status.StatusCode);
            Assert.DoesNotContain(staging, HostMounts.MountPointsUnder(_driver.Root));
            Assert.DoesNotContain("do-not-log-this-s3cr3t", status.Detail, StringComparison.Ordinal);
            // The driver runs at Debug, so the request itself was logged: redacted.
            Assert.Contains("NodeStageVolume", _driver.Log, StringComparison.Ordinal);
            Assert.DoesNotContain("do-not-log-this-s3cr3t", _driver.Log, StringComparison.Ordinal);
        }
        finally
        {
            await UnstageAsync(id, staging);
            await DeleteAsync(id);
        }
    }

    [Fact]
    public async Task NodePublish_EphemeralWithoutSource_InvalidArgument()
    {
        var target = TargetPath(_driver, "inline");
        var request = new NodePublishVolumeRequest
        {
            VolumeId = "csi-0123456789abcdef", TargetPath = target, VolumeCapability = Mount(),
        };
        request.VolumeContext["csi.storage.k8s.io/ephemeral"] = "true";
        var status = await FailsAsync(() => Node.NodePublishVolumeAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
        Assert.Contains("source", status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(target, HostMounts.MountPointsUnder(_driver.Root));
    }

    [Fact]
    public async Task NodeStage_StaticPvWithoutSource_NotFound()
    {
        var staging = StagingPath(_driver, "static-pv-handle");
        var status = await FailsAsync(() => Node.NodeStageVolumeAsync(new NodeStageVolumeRequest
        {
            VolumeId = "static-pv-handle", StagingTargetPath = staging, VolumeCapability = Mount(Mode.MultiNodeReaderOnly),
        }));
        Assert.Equal(StatusCode.NotFound, status.StatusCode);
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int umount2(string target, int flags);
}
