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
        // A dataset whose FUSE session died with an earlier process keeps its record: kubelet will
        // unstage it, and until then NodeGetVolumeStats can say the session is gone instead of NotFound.
        foreach (var dropped in _state.Reconcile(MountTable.IsMountPoint, keepUnmounted: s => s.Kind == VolumeKind.Dataset))
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
        var kind = KindOf(volumeId, request.VolumeContext);
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

        if (kind == VolumeKind.Dataset && MountTable.IsMountPoint(stagingPath) && _datasets?.IsServing(volumeId) != true)
        {
            // A FUSE mount whose server died with an earlier plugin process: every access to it
            // fails with ENOTCONN. Take it down so the dataset can be served afresh.
            Mounter.Unmount(stagingPath);
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
            await RequireDatasets().StageAsync(
                volumeId, DatasetContext(request.VolumeContext), request.Secrets, stagingPath, context.CancellationToken);
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

    public override async Task<NodePublishVolumeResponse> NodePublishVolume(NodePublishVolumeRequest request, ServerCallContext context)
    {
        var volumeId = Require.NonEmpty(request.VolumeId, "volume_id");
        var targetPath = MountTable.Normalise(Require.NonEmpty(request.TargetPath, "target_path"));
        var capability = Require.Present(request.VolumeCapability, "volume_capability");
        CapabilityRules.RequireWellFormed(capability, "volume_capability");
        if (request.VolumeContext.TryGetValue(VolumeContextKeys.Ephemeral, out var ephemeral) && ephemeral == "true")
        {
            await PublishEphemeralAsync(volumeId, targetPath, request, context.CancellationToken);
            return new NodePublishVolumeResponse();
        }

        var stagingPath = MountTable.Normalise(Require.NonEmpty(request.StagingTargetPath, "staging_target_path"));
        var kind = KindOf(volumeId, request.VolumeContext);
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
                return new NodePublishVolumeResponse();
            }

            throw CsiErrors.AlreadyExists(published is null || published.VolumeId != volumeId
                ? $"{targetPath} already has another volume mounted on it"
                : $"volume {volumeId} is already published at {targetPath} with readonly={published.ReadOnly}");
        }

        Directory.CreateDirectory(targetPath);
        Mounter.Bind(stagingPath, targetPath, readOnly);
        _state.SetPublished(new PublishedVolume(volumeId, targetPath, readOnly));
        return new NodePublishVolumeResponse();
    }

    /// <summary>
    /// An inline (CSI ephemeral) volume: kubelet skips staging and hands us the dataset spec
    /// in the pod's volumeAttributes, so the dataset is mounted straight at the target. Kubelet
    /// asks for a writer mode for inline volumes whatever the pod says; a dataset is served
    /// read-only regardless.
    /// </summary>
    private async Task PublishEphemeralAsync(string volumeId, string targetPath, NodePublishVolumeRequest request, CancellationToken ct)
    {
        if (!request.VolumeContext.ContainsKey(VolumeContextKeys.Source))
        {
            throw CsiErrors.InvalidArgument(
                "inline ephemeral csicache volumes are datasets: set volumeAttributes.source (s3://, https://, file://)");
        }

        if (capabilityIsBlock(request.VolumeCapability))
        {
            throw CsiErrors.InvalidArgument("block access is not supported: csicache volumes are filesystems");
        }

        var datasetContext = DatasetContext(request.VolumeContext);
        using var held = _locks.Acquire(volumeId);
        var published = _state.FindPublished(targetPath);
        if (published is not null && MountTable.IsMountPoint(targetPath))
        {
            if (published.VolumeId == volumeId && published.Ephemeral && _datasets?.IsServing(volumeId) == true)
            {
                return;
            }

            throw CsiErrors.AlreadyExists($"{targetPath} already has volume {published.VolumeId} mounted on it");
        }

        Directory.CreateDirectory(targetPath);
        await RequireDatasets().StageAsync(volumeId, datasetContext, request.Secrets, targetPath, ct);
        _state.SetPublished(new PublishedVolume(volumeId, targetPath, ReadOnly: true, Ephemeral: true));

        static bool capabilityIsBlock(VolumeCapability c) => c.AccessTypeCase == VolumeCapability.AccessTypeOneofCase.Block;
    }

    private IDatasetStager RequireDatasets() =>
        _datasets ?? throw CsiErrors.FailedPrecondition(
            "this node plugin was started without dataset support; dataset volumes cannot be mounted here");

    /// <summary>Validates a dataset's volume context the same way CreateVolume validates parameters (static PVs skip CreateVolume).</summary>
    private static Dictionary<string, string> DatasetContext(IDictionary<string, string> volumeContext)
    {
        if (!volumeContext.ContainsKey(VolumeContextKeys.Source))
        {
            throw CsiErrors.InvalidArgument("the volume context has no 'source'; a dataset volume needs s3://, https:// or file:// source");
        }

        var parameters = volumeContext
            .Where(kv => kv.Key != VolumeContextKeys.Ephemeral)
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        return DatasetParameters.ToVolumeContext(parameters);
    }

    public override async Task<NodeUnpublishVolumeResponse> NodeUnpublishVolume(NodeUnpublishVolumeRequest request, ServerCallContext context)
    {
        var volumeId = Require.NonEmpty(request.VolumeId, "volume_id");
        var targetPath = MountTable.Normalise(Require.NonEmpty(request.TargetPath, "target_path"));
        using var held = _locks.Acquire(volumeId);
        var published = _state.FindPublished(targetPath);
        if (published is not null && published.VolumeId != volumeId)
        {
            throw CsiErrors.FailedPrecondition($"{targetPath} holds volume {published.VolumeId}, not {volumeId}");
        }

        if (published is { Ephemeral: true } && _datasets is not null)
        {
            await _datasets.UnstageAsync(volumeId, targetPath, context.CancellationToken);
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
        return new NodeUnpublishVolumeResponse();
    }

    public override Task<NodeGetVolumeStatsResponse> NodeGetVolumeStats(NodeGetVolumeStatsRequest request, ServerCallContext context)
    {
        var volumeId = Require.NonEmpty(request.VolumeId, "volume_id");
        var volumePath = Require.NonEmpty(request.VolumePath, "volume_path");
        var staged = _state.FindStaged(volumeId);
        var ephemeral = _state.Published().FirstOrDefault(p => p.VolumeId == volumeId && p.Ephemeral);
        var exists = staged is not null || ephemeral is not null
            || (VolumeIds.TryParse(volumeId, out var kind) && kind == VolumeKind.Local && _local.Find(volumeId) is not null);
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
        var isDataset = staged?.Kind == VolumeKind.Dataset || ephemeral is not null;
        var serving = !isDataset || _datasets?.IsServing(volumeId) == true;
        if (!mounted || !serving)
        {
            response.VolumeCondition.Abnormal = true;
            response.VolumeCondition.Message = !mounted
                ? $"{path} is no longer mounted; the volume must be staged and published again"
                : "the dataset's FUSE session has stopped; reads fail until the volume is staged again";
            return Task.FromResult(response);
        }

        var usage = FileSystemUsage.Of(path);
        var cached = isDataset ? _datasets?.CachedBytes(volumeId) : null;
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

    /// <summary>
    /// Our ids carry their kind. A statically provisioned PV has an id of the admin's choosing
    /// and is a dataset when its volume attributes name a source.
    /// </summary>
    private static VolumeKind KindOf(string volumeId, IDictionary<string, string> volumeContext) =>
        VolumeIds.TryParse(volumeId, out var kind) ? kind
        : volumeContext.ContainsKey(VolumeContextKeys.Source) ? VolumeKind.Dataset
        : throw CsiErrors.NotFound($"volume {volumeId} was not created by this driver and names no dataset source");

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
