using System.Globalization;
using Csi.V1;
using CsiCache.Csi;
using Grpc.Core;
using RpcType = Csi.V1.ControllerServiceCapability.Types.RPC.Types.Type;

namespace CsiCache.Controller;

/// <summary>
/// CSI Controller. Dataset volumes are pure bookkeeping: the parameters are validated and
/// travel in the volume context. Local volumes are delegated to <see cref="ILocalVolumeProvisioner"/>,
/// present only where the process runs on a node (distributed provisioning: the node's own
/// external-provisioner asks its own plugin).
/// </summary>
public sealed class ControllerService(
    DatasetVolumeStore datasets,
    ILocalVolumeProvisioner? local,
    VolumeLocks locks) : global::Csi.V1.Controller.ControllerBase
{
    /// <summary>Size of a local volume when the request gives neither required nor limit bytes.</summary>
    public const long DefaultLocalBytes = 1L << 30;

    /// <summary>What GetCapacity reports for dataset classes: 1 EiB, far above any claim.</summary>
    public const long DatasetCapacity = 1L << 60;

    public override async Task<CreateVolumeResponse> CreateVolume(CreateVolumeRequest request, ServerCallContext context)
    {
        var name = Require.NonEmpty(request.Name, "name");
        CapabilityRules.RequireWellFormed(request.VolumeCapabilities, "volume_capabilities");
        if (request.VolumeContentSource is not null)
        {
            throw CsiErrors.InvalidArgument("volume_content_source is not supported: csicache volumes cannot be cloned or restored from snapshots");
        }

        var capacity = request.CapacityRange ?? new CapacityRange();
        if (capacity.RequiredBytes < 0 || capacity.LimitBytes < 0)
        {
            throw CsiErrors.InvalidArgument("capacity_range bytes must not be negative");
        }

        if (capacity.LimitBytes > 0 && capacity.RequiredBytes > capacity.LimitBytes)
        {
            throw CsiErrors.InvalidArgument(
                $"capacity_range.required_bytes ({capacity.RequiredBytes}) exceeds limit_bytes ({capacity.LimitBytes})");
        }

        var kind = request.Parameters.ContainsKey(VolumeContextKeys.Source) ? VolumeKind.Dataset : VolumeKind.Local;
        CapabilityRules.RequireSupported(kind, request.VolumeCapabilities);
        var volumeId = VolumeIds.For(kind, name);
        using var held = locks.Acquire(name);
        var volume = kind == VolumeKind.Dataset
            ? CreateDataset(volumeId, name, request, capacity)
            : await CreateLocalAsync(volumeId, name, request, capacity, context.CancellationToken);
        return new CreateVolumeResponse { Volume = volume };
    }

    private Volume CreateDataset(string volumeId, string name, CreateVolumeRequest request, CapacityRange capacity)
    {
        var volumeContext = DatasetParameters.ToVolumeContext(request.Parameters);
        var existing = datasets.Find(volumeId);
        if (existing is not null)
        {
            if (!existing.SameContext(volumeContext) || !existing.FitsCapacity(capacity.RequiredBytes, capacity.LimitBytes))
            {
                throw CsiErrors.AlreadyExists(
                    $"volume '{name}' already exists with different parameters or size; choose another name or delete it first");
            }

            return ToVolume(existing);
        }

        // A dataset takes no space of its own; we report what was asked so the PV shows it.
        var record = new VolumeRecord(volumeId, name, VolumeKind.Dataset, capacity.RequiredBytes, volumeContext);
        datasets.Save(record);
        return ToVolume(record);
    }

    private async Task<Volume> CreateLocalAsync(
        string volumeId, string name, CreateVolumeRequest request, CapacityRange capacity, CancellationToken ct)
    {
        var provisioner = local ?? throw CsiErrors.InvalidArgument(
            "this controller makes dataset volumes only (set the 'source' parameter); local volumes are created by " +
            "the node plugin on their node (StorageClass csicache-local with volumeBindingMode WaitForFirstConsumer)");
        foreach (var key in request.Parameters.Keys)
        {
            if (!key.StartsWith(VolumeContextKeys.KubernetesPrefix, StringComparison.Ordinal))
            {
                throw CsiErrors.InvalidArgument(
                    $"unknown parameter '{key}': local volumes take no parameters (a dataset volume needs 'source')");
            }
        }

        RequireTopologyIsThisNode(request.AccessibilityRequirements, provisioner.NodeId);
        var size = ChooseLocalSize(capacity, provisioner.MinimumBytes);
        var existing = provisioner.Find(volumeId);
        if (existing is not null)
        {
            if (!existing.FitsCapacity(capacity.RequiredBytes, capacity.LimitBytes))
            {
                throw CsiErrors.AlreadyExists(
                    $"volume '{name}' already exists with {existing.CapacityBytes} bytes, which does not fit the requested range");
            }

            return ToVolume(existing);
        }

        var available = provisioner.AvailableBytes();
        if (size > available)
        {
            throw CsiErrors.ResourceExhausted(
                $"node {provisioner.NodeId} has {available} bytes free for local volumes; {size} were requested");
        }

        return ToVolume(await provisioner.CreateAsync(volumeId, name, size, ct));
    }

    /// <summary>
    /// The size to give a local volume: what was required (at least the minimum), else the
    /// default, never above the limit.
    /// </summary>
    public static long ChooseLocalSize(CapacityRange capacity, long minimumBytes)
    {
        var size = capacity.RequiredBytes > 0 ? capacity.RequiredBytes : DefaultLocalBytes;
        if (capacity.RequiredBytes == 0 && capacity.LimitBytes > 0)
        {
            size = Math.Min(size, capacity.LimitBytes);
        }

        size = Math.Max(size, minimumBytes);
        // Round up to whole MiB: the image and ext4 both work in blocks.
        size = (size + (1 << 20) - 1) & ~((1L << 20) - 1);
        if (capacity.LimitBytes > 0 && size > capacity.LimitBytes)
        {
            throw CsiErrors.OutOfRange(
                $"capacity_range.limit_bytes ({capacity.LimitBytes}) is below the smallest local volume we can make ({size} bytes)");
        }

        return size;
    }

    private static void RequireTopologyIsThisNode(TopologyRequirement? requirement, string nodeId)
    {
        if (requirement is null || requirement.Requisite.Count == 0)
        {
            return;
        }

        foreach (var topology in requirement.Requisite)
        {
            if (!topology.Segments.TryGetValue(VolumeContextKeys.TopologyNodeKey, out var node) || node == nodeId)
            {
                return;
            }
        }

        throw CsiErrors.ResourceExhausted(
            $"local volumes are created on the node that serves the request ({nodeId}), which the requisite topology excludes");
    }

    public override async Task<DeleteVolumeResponse> DeleteVolume(DeleteVolumeRequest request, ServerCallContext context)
    {
        var volumeId = Require.NonEmpty(request.VolumeId, "volume_id");
        using var held = locks.Acquire(volumeId);
        if (VolumeIds.TryParse(volumeId, out var kind))
        {
            if (kind == VolumeKind.Dataset)
            {
                datasets.Delete(volumeId);
            }
            else if (local is not null)
            {
                await local.DeleteAsync(volumeId, context.CancellationToken);
            }
            else
            {
                throw CsiErrors.FailedPrecondition(
                    $"{volumeId} is a local volume; it is deleted by the node plugin on its node, not by this controller");
            }
        }

        // An id we never issued names nothing: deleting nothing succeeds, as the spec asks.
        return new DeleteVolumeResponse();
    }

    public override Task<ValidateVolumeCapabilitiesResponse> ValidateVolumeCapabilities(
        ValidateVolumeCapabilitiesRequest request, ServerCallContext context)
    {
        var volumeId = Require.NonEmpty(request.VolumeId, "volume_id");
        CapabilityRules.RequireWellFormed(request.VolumeCapabilities, "volume_capabilities");
        var record = Lookup(volumeId) ?? throw CsiErrors.NotFound($"volume {volumeId} does not exist");
        var response = new ValidateVolumeCapabilitiesResponse();
        var reason = request.VolumeCapabilities.Select(c => CapabilityRules.Unsupported(record.Kind, c)).FirstOrDefault(r => r is not null);
        if (reason is not null)
        {
            response.Message = reason;
            return Task.FromResult(response);
        }

        response.Confirmed = new ValidateVolumeCapabilitiesResponse.Types.Confirmed();
        response.Confirmed.VolumeCapabilities.Add(request.VolumeCapabilities);
        response.Confirmed.VolumeContext.Add(request.VolumeContext);
        response.Confirmed.Parameters.Add(request.Parameters);
        return Task.FromResult(response);
    }

    private VolumeRecord? Lookup(string volumeId)
    {
        if (!VolumeIds.TryParse(volumeId, out var kind))
        {
            return null;
        }

        return kind == VolumeKind.Local ? local?.Find(volumeId) : datasets.Find(volumeId);
    }

    public override Task<ListVolumesResponse> ListVolumes(ListVolumesRequest request, ServerCallContext context)
    {
        if (!datasets.IsPersistent)
        {
            throw CsiErrors.Unimplemented("ListVolumes needs a --state-dir");
        }

        if (request.MaxEntries < 0)
        {
            throw CsiErrors.InvalidArgument("max_entries must not be negative");
        }

        var all = datasets.List().Concat(local?.List() ?? []).OrderBy(v => v.VolumeId, StringComparer.Ordinal).ToList();
        var start = 0;
        if (request.StartingToken.Length > 0
            && (!int.TryParse(request.StartingToken, NumberStyles.None, CultureInfo.InvariantCulture, out start) || start > all.Count))
        {
            throw CsiErrors.Aborted($"starting_token '{request.StartingToken}' is not one this plugin issued; list again from the start");
        }

        var count = request.MaxEntries == 0 ? all.Count - start : Math.Min(request.MaxEntries, all.Count - start);
        var response = new ListVolumesResponse();
        foreach (var record in all.Skip(start).Take(count))
        {
            response.Entries.Add(new ListVolumesResponse.Types.Entry { Volume = ToVolume(record) });
        }

        if (start + count < all.Count)
        {
            response.NextToken = (start + count).ToString(CultureInfo.InvariantCulture);
        }

        return Task.FromResult(response);
    }

    public override Task<GetCapacityResponse> GetCapacity(GetCapacityRequest request, ServerCallContext context)
    {
        var provisioner = local ?? throw CsiErrors.Unimplemented("GetCapacity is served by the node plugin, which owns the local disk");
        var response = new GetCapacityResponse();
        var elsewhere = request.AccessibleTopology is { } topology
            && topology.Segments.TryGetValue(VolumeContextKeys.TopologyNodeKey, out var node) && node != provisioner.NodeId;
        if (elsewhere)
        {
            // Another node's disk is not ours to count.
            return Task.FromResult(response);
        }

        if (request.Parameters.ContainsKey(VolumeContextKeys.Source))
        {
            // A dataset takes no local capacity of its own (the cache is shared and bounded by its
            // quota). With storage capacity tracking the scheduler drops nodes reporting less than
            // the claim's size, so report "no practical limit" rather than zero.
            response.AvailableCapacity = DatasetCapacity;
            response.MaximumVolumeSize = DatasetCapacity;
            return Task.FromResult(response);
        }

        var available = provisioner.AvailableBytes();
        response.AvailableCapacity = available;
        response.MaximumVolumeSize = available;
        response.MinimumVolumeSize = provisioner.MinimumBytes;
        return Task.FromResult(response);
    }

    public override Task<ControllerGetCapabilitiesResponse> ControllerGetCapabilities(
        ControllerGetCapabilitiesRequest request, ServerCallContext context)
    {
        var response = new ControllerGetCapabilitiesResponse();
        response.Capabilities.Add(Rpc(RpcType.CreateDeleteVolume));
        if (local is not null)
        {
            response.Capabilities.Add(Rpc(RpcType.GetCapacity));
        }

        if (datasets.IsPersistent)
        {
            response.Capabilities.Add(Rpc(RpcType.ListVolumes));
        }

        return Task.FromResult(response);
    }

    private static ControllerServiceCapability Rpc(RpcType type) =>
        new() { Rpc = new ControllerServiceCapability.Types.RPC { Type = type } };

    private Volume ToVolume(VolumeRecord record)
    {
        var volume = new Volume { VolumeId = record.VolumeId, CapacityBytes = record.CapacityBytes };
        foreach (var (key, value) in record.Context)
        {
            volume.VolumeContext[key] = value;
        }

        if (record.Kind == VolumeKind.Local && local is not null)
        {
            var topology = new Topology();
            topology.Segments.Add(VolumeContextKeys.TopologyNodeKey, local.NodeId);
            volume.AccessibleTopology.Add(topology);
        }

        return volume;
    }
}
