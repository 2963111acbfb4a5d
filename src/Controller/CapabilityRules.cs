using Csi.V1;
using CsiCache.Csi;
using Mode = Csi.V1.VolumeCapability.Types.AccessMode.Types.Mode;

namespace CsiCache.Controller;

/// <summary>Which volume capabilities each kind of volume can honour, and why not when it can't.</summary>
public static class CapabilityRules
{
    /// <summary>Filesystem types a local volume can be formatted with.</summary>
    public const string DefaultFsType = "ext4";

    /// <summary>Checks that every capability is complete; INVALID_ARGUMENT naming the gap otherwise.</summary>
    public static void RequireWellFormed(IReadOnlyList<VolumeCapability> capabilities, string field)
    {
        if (capabilities.Count == 0)
        {
            throw CsiErrors.InvalidArgument($"{field} is required");
        }

        foreach (var capability in capabilities)
        {
            RequireWellFormed(capability, field);
        }
    }

    public static void RequireWellFormed(VolumeCapability capability, string field)
    {
        if (capability.AccessTypeCase == VolumeCapability.AccessTypeOneofCase.None)
        {
            throw CsiErrors.InvalidArgument($"{field}.access_type is required (mount or block)");
        }

        if (capability.AccessMode is null || capability.AccessMode.Mode == Mode.Unknown)
        {
            throw CsiErrors.InvalidArgument($"{field}.access_mode is required");
        }
    }

    /// <summary>Null when the capability suits the kind, else the reason it does not.</summary>
    public static string? Unsupported(VolumeKind kind, VolumeCapability capability)
    {
        if (capability.AccessTypeCase == VolumeCapability.AccessTypeOneofCase.Block)
        {
            return "block access is not supported: csicache volumes are filesystems (use volumeMode: Filesystem)";
        }

        var mode = capability.AccessMode.Mode;
        if (kind == VolumeKind.Dataset)
        {
            if (mode is not (Mode.SingleNodeReaderOnly or Mode.MultiNodeReaderOnly))
            {
                return $"dataset volumes are read-only: access mode {mode} is not allowed; use ReadOnlyMany " +
                       "(MULTI_NODE_READER_ONLY) or a read-only single-node mode";
            }

            return null;
        }

        if (mode is Mode.MultiNodeMultiWriter or Mode.MultiNodeSingleWriter or Mode.MultiNodeReaderOnly)
        {
            return $"local volumes live on one node: access mode {mode} is not allowed; use ReadWriteOnce or ReadWriteOncePod";
        }

        var fsType = capability.Mount?.FsType;
        if (!string.IsNullOrEmpty(fsType) && fsType != DefaultFsType)
        {
            return $"local volumes are formatted {DefaultFsType}; fs_type '{fsType}' is not supported";
        }

        return null;
    }

    /// <summary>Throws INVALID_ARGUMENT with the first reason any capability is unsupported.</summary>
    public static void RequireSupported(VolumeKind kind, IEnumerable<VolumeCapability> capabilities)
    {
        foreach (var capability in capabilities)
        {
            if (Unsupported(kind, capability) is { } reason)
            {
                throw CsiErrors.InvalidArgument(reason);
            }
        }
    }
}
