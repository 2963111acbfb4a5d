using Csi.V1;
using Grpc.Core;
using Mode = Csi.V1.VolumeCapability.Types.AccessMode.Types.Mode;

namespace CsiCache.Conformance;

/// <summary>Request builders and kubelet's path shapes, so tests read as the calls kubelet makes.</summary>
public static class Requests
{
    public const long MiB = 1L << 20;

    public static VolumeCapability Mount(Mode mode = Mode.SingleNodeWriter, params string[] flags)
    {
        var capability = new VolumeCapability
        {
            Mount = new VolumeCapability.Types.MountVolume(),
            AccessMode = new VolumeCapability.Types.AccessMode { Mode = mode },
        };
        capability.Mount.MountFlags.Add(flags);
        return capability;
    }

    public static VolumeCapability Block(Mode mode = Mode.SingleNodeWriter) => new()
    {
        Block = new VolumeCapability.Types.BlockVolume(),
        AccessMode = new VolumeCapability.Types.AccessMode { Mode = mode },
    };

    public static CreateVolumeRequest CreateLocal(string name, long requiredBytes = 32 * MiB, long limitBytes = 0,
        Mode mode = Mode.SingleNodeWriter)
    {
        var request = new CreateVolumeRequest
        {
            Name = name,
            CapacityRange = new CapacityRange { RequiredBytes = requiredBytes, LimitBytes = limitBytes },
        };
        request.VolumeCapabilities.Add(Mount(mode));
        return request;
    }

    public static CreateVolumeRequest CreateDataset(string name, string source, Mode mode = Mode.MultiNodeReaderOnly,
        params (string Key, string Value)[] parameters)
    {
        var request = new CreateVolumeRequest { Name = name };
        request.VolumeCapabilities.Add(Mount(mode));
        request.Parameters["source"] = source;
        foreach (var (key, value) in parameters)
        {
            request.Parameters[key] = value;
        }

        return request;
    }

    public static string UniqueName(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 63)];

    /// <summary>kubelet's global mount path for a volume (kubelet makes the parents, the plugin the leaf).</summary>
    public static string StagingPath(PluginProcess driver, string volumeId) => driver.Paths.StagingPath(volumeId);

    /// <summary>kubelet's per-pod target: pods/UID/volumes/kubernetes.io~csi/PV/mount.</summary>
    public static string TargetPath(PluginProcess driver, string pv, string? podUid = null) =>
        driver.Paths.TargetPath(podUid ?? Guid.NewGuid().ToString(), pv);

    /// <summary>Runs a call expected to fail and returns its status.</summary>
    public static async Task<Status> FailsAsync<T>(Func<AsyncUnaryCall<T>> call)
    {
        try
        {
            await call();
        }
        catch (RpcException e)
        {
            return e.Status;
        }

        throw new Xunit.Sdk.XunitException("the call succeeded but was expected to fail");
    }
}
