using Csi.V1;
using CsiCache.Controller;
using CsiCache.Csi;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using RpcType = Csi.V1.NodeServiceCapability.Types.RPC.Types.Type;
using Mode = Csi.V1.VolumeCapability.Types.AccessMode.Types.Mode;

namespace CsiCache.Node;

/// <summary>Where this node plugin keeps things.</summary>
public sealed record NodeOptions(string NodeId, string StateDirectory, string LocalDirectory);

/// <summary>
/// CSI Node. Staging makes the volume's filesystem appear at the staging path (a loop mount of
/// a local image, or a FUSE session for a dataset); publishing bind-mounts that into the pod.
/// Every call is idempotent: the mount table decides whether work is left to do, and the
/// state file remembers what we did for a restarted plugin.
/// </summary>
public sealed partial class NodeService : global::Csi.V1.Node.NodeBase
{
    private readonly NodeOptions _options;
    private readonly NodeState _state;
    private readonly LocalVolumeStore _local;
    private readonly IDatasetStager? _datasets;
    private readonly VolumeLocks _locks;
    private readonly ILogger<NodeService> _logger;

    public NodeService(NodeOptions options, NodeState state, LocalVolumeStore local, IDatasetStager? datasets,
        VolumeLocks locks, ILogger<NodeService> logger)
    {
        _options = options;
        _state = state;
        _local = local;
        _datasets = datasets;
        _locks = locks;
        _logger = logger;
        foreach (var dropped in _state.Reconcile(MountTable.IsMountPoint))
        {
            LogDropped(dropped);
        }
    }

    public override async Task<NodeStageVolumeResponse> NodeStageVolume(NodeStageVolumeRequest request, ServerCallContext context)
    {
        var volumeId = Require.NonEmpty(request.VolumeId, "volume_id");
        var stagingPath = MountTable.Normalise(Require.NonEmpty(request.StagingTargetPath, "staging_target_path"));
        var capability = Require.Present(request.VolumeCapability, "volume_capability");
        CapabilityRules.RequireWellFormed(capability, "volume_capability");
        var kind = KindOf(volumeId);
        if (CapabilityRules.Unsupported(kind, capability) is { } reason)
        {
            throw CsiErrors.InvalidArgument(reason);
        }

        var flags = Mounter.ValidateMountFlags(capability.Mount?.MountFlags ?? []);
        var capabilityKey = $"{capability.AccessMode.Mode}|{string.Join(',', flags)}";
        using var held = _locks.Acquire(volumeId);

        if (_state.FindStaged(volumeId) is { } staged)
        {
            if (staged.StagingPath != stagingPath)
            {
                throw CsiErrors.FailedPrecondition(
                    $"volume {volumeId} is already staged at {staged.StagingPath}; unstage it before staging at {stagingPath}");
            }

            if (MountTable.IsMountPoint(stagingPath) && (kind == VolumeKind.Local || _datasets?.IsServing(volumeId) == true))
            {
                if (staged.CapabilityKey != capabilityKey)
                {
                    throw CsiErrors.AlreadyExists(
                        $"volume {volumeId} is staged with capability {staged.CapabilityKey}, not {capabilityKey}");
                }

                return new NodeStageVolumeResponse();
            }
        }

        Directory.CreateDirectory(stagingPath);
        if (kind == VolumeKind.Local)
        {
            var image = _local.Find(volumeId) is not null
                ? _local.ImagePath(volumeId)
                : throw CsiErrors.NotFound($"local volume {volumeId} does not exist on node {_options.NodeId}");
            if (MountTable.IsMountPoint(stagingPath))
            {
                throw CsiErrors.FailedPrecondition($"{stagingPath} already has something else mounted on it");
            }

            await Mounter.MountImageAsync(image, stagingPath, flags, context.CancellationToken);
        }
        else
        {
            var stager = _datasets ?? throw CsiErrors.FailedPrecondition(
                "this node plugin was started without dataset support; dataset volumes cannot be staged here");
            await stager.StageAsync(volumeId, request.VolumeContext, request.Secrets, stagingPath, context.CancellationToken);
        }

        _state.SetStaged(new StagedVolume(volumeId, kind, stagingPath, capabilityKey));
        return new NodeStageVolumeResponse();
    }

    public override async Task<NodeUnstageVolumeResponse> NodeUnstageVolume(NodeUnstageVolumeRequest request, ServerCallContext context)
    {
        var volumeId = Require.NonEmpty(request.VolumeId, "volume_id");
        var stagingPath = MountTable.Normalise(Require.NonEmpty(request.StagingTargetPath, "staging_target_path"));
        using var held = _locks.Acquire(volumeId);
        var staged = _state.FindStaged(volumeId);
        if (staged is not null && staged.StagingPath != stagingPath)
        {
            throw CsiErrors.FailedPrecondition($"volume {volumeId} is staged at {staged.StagingPath}, not at {stagingPath}");
        }

        if (staged?.Kind == VolumeKind.Dataset && _datasets is not null)
        {
            await _datasets.UnstageAsync(volumeId, stagingPath, context.CancellationToken);
        }

        Mounter.Unmount(stagingPath);
        RemoveEmptyDirectory(stagingPath);
        _state.RemoveStaged(volumeId);
        return new NodeUnstageVolumeResponse();
    }

    public override Task<NodePublishVolumeResponse> NodePublishVolume(NodePublishVolumeRequest request, ServerCallContext context)
    {
        var volumeId = Require.NonEmpty(request.VolumeId, "volume_id");
        var targetPath = MountTable.Normalise(Require.NonEmpty(request.TargetPath, "target_path"));
        var capability = Require.Present(request.VolumeCapability, "volume_capability");
        CapabilityRules.RequireWellFormed(capability, "volume_capability");
        var stagingPath = MountTable.Normalise(Require.NonEmpty(request.StagingTargetPath, "staging_target_path"));
        var kind = KindOf(volumeId);
        if (CapabilityRules.Unsupported(kind, capability) is { } reason)
        {
            throw CsiErrors.InvalidArgument(reason);
        }

        var readOnly = request.Readonly || kind == VolumeKind.Dataset
            || capability.AccessMode.Mode is Mode.SingleNodeReaderOnly or Mode.MultiNodeReaderOnly;
        using var held = _locks.Acquire(volumeId);

        var staged = _state.FindStaged(volumeId);
        if (staged is null || staged.StagingPath != stagingPath || !MountTable.IsMountPoint(stagingPath))
        {
            throw CsiErrors.FailedPrecondition(
                $"volume {volumeId} is not staged at {stagingPath}; NodeStageVolume must succeed before NodePublishVolume");
        }

        if (MountTable.IsMountPoint(targetPath))
        {
            var published = _state.FindPublished(targetPath);
            if (published is not null && published.VolumeId == volumeId && published.ReadOnly == readOnly)
            {
                return Task.FromResult(new NodePublishVolumeResponse());
            }

            throw CsiErrors.AlreadyExists(published is null || published.VolumeId != volumeId
                ? $"{targetPath} already has another volume mounted on it"
                : $"volume {volumeId} is already published at {targetPath} with readonly={published.ReadOnly}");
        }

        Directory.CreateDirectory(targetPath);
        Mounter.Bind(stagingPath, targetPath, readOnly);
        _state.SetPublished(new PublishedVolume(volumeId, targetPath, readOnly));
        return Task.FromResult(new NodePublishVolumeResponse());
    }

    public override Task<NodeUnpublishVolumeResponse> NodeUnpublishVolume(NodeUnpublishVolumeRequest request, ServerCallContext context)
    {
        var volumeId = Require.NonEmpty(request.VolumeId, "volume_id");
        var targetPath = MountTable.Normalise(Require.NonEmpty(request.TargetPath, "target_path"));
        using var held = _locks.Acquire(volumeId);
        var published = _state.FindPublished(targetPath);
        if (published is not null && published.VolumeId != volumeId)
        {
            throw CsiErrors.FailedPrecondition($"{targetPath} holds volume {published.VolumeId}, not {volumeId}");
        }

        Mounter.Unmount(targetPath);
        // The spec has the plugin remove the target it created; kubelet then removes the rest.
        if (Directory.Exists(targetPath))
        {
            Directory.Delete(targetPath, recursive: false);
        }
        else if (File.Exists(targetPath))
        {
            File.Delete(targetPath);
        }

        _state.RemovePublished(targetPath);
        return Task.FromResult(new NodeUnpublishVolumeResponse());
    }

    public override Task<NodeGetVolumeStatsResponse> NodeGetVolumeStats(NodeGetVolumeStatsRequest request, ServerCallContext context)
    {
        var volumeId = Require.NonEmpty(request.VolumeId, "volume_id");
        var volumePath = Require.NonEmpty(request.VolumePath, "volume_path");
        var staged = _state.FindStaged(volumeId);
        var exists = staged is not null || (VolumeIds.TryParse(volumeId, out var kind) && kind == VolumeKind.Local && _local.Find(volumeId) is not null);
        if (!exists)
        {
            throw CsiErrors.NotFound($"volume {volumeId} is not known on node {_options.NodeId}");
        }

        var path = Path.IsPathRooted(volumePath) ? MountTable.Normalise(volumePath) : null;
        var isOurs = path is not null && (staged?.StagingPath == path || _state.FindPublished(path)?.VolumeId == volumeId);
        if (path is null || !isOurs || !Directory.Exists(path))
        {
            throw CsiErrors.NotFound($"volume {volumeId} is not staged or published at {volumePath}");
        }

        var response = new NodeGetVolumeStatsResponse { VolumeCondition = new VolumeCondition() };
        var mounted = MountTable.IsMountPoint(path);
        var serving = staged?.Kind != VolumeKind.Dataset || _datasets?.IsServing(volumeId) == true;
        if (!mounted || !serving)
        {
            response.VolumeCondition.Abnormal = true;
            response.VolumeCondition.Message = !mounted
                ? $"{path} is no longer mounted; the volume must be staged and published again"
                : "the dataset's FUSE session has stopped; reads fail until the volume is staged again";
            return Task.FromResult(response);
        }

        var usage = FileSystemUsage.Of(path);
        var cached = staged?.Kind == VolumeKind.Dataset ? _datasets?.CachedBytes(volumeId) : null;
        response.Usage.Add(new VolumeUsage
        {
            Unit = VolumeUsage.Types.Unit.Bytes,
            Total = usage.TotalBytes,
            Available = usage.AvailableBytes,
            Used = cached ?? usage.UsedBytes,
        });
        response.Usage.Add(new VolumeUsage
        {
            Unit = VolumeUsage.Types.Unit.Inodes,
            Total = usage.TotalInodes,
            Available = usage.FreeInodes,
            Used = usage.UsedInodes,
        });
        response.VolumeCondition.Message = "healthy";
        return Task.FromResult(response);
    }

    public override Task<NodeGetCapabilitiesResponse> NodeGetCapabilities(NodeGetCapabilitiesRequest request, ServerCallContext context)
    {
        var response = new NodeGetCapabilitiesResponse();
        foreach (var type in new[] { RpcType.StageUnstageVolume, RpcType.GetVolumeStats, RpcType.VolumeCondition })
        {
            response.Capabilities.Add(new NodeServiceCapability { Rpc = new NodeServiceCapability.Types.RPC { Type = type } });
        }

        return Task.FromResult(response);
    }

    public override Task<NodeGetInfoResponse> NodeGetInfo(NodeGetInfoRequest request, ServerCallContext context)
    {
        var response = new NodeGetInfoResponse
        {
            NodeId = _options.NodeId,
            AccessibleTopology = new Topology(),
        };
        response.AccessibleTopology.Segments.Add(VolumeContextKeys.TopologyNodeKey, _options.NodeId);
        return Task.FromResult(response);
    }

    private static VolumeKind KindOf(string volumeId) =>
        VolumeIds.TryParse(volumeId, out var kind)
            ? kind
            : throw CsiErrors.NotFound($"volume {volumeId} was not created by this driver");

    private static void RemoveEmptyDirectory(string path)
    {
        if (Directory.Exists(path) && !MountTable.IsMountPoint(path) && !Directory.EnumerateFileSystemEntries(path).Any())
        {
            Directory.Delete(path);
        }
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "node state: dropped {Record}: its mount is gone")]
    private partial void LogDropped(string record);
}
