using Csi.V1;
using Grpc.Core;
using Mode = Csi.V1.VolumeCapability.Types.AccessMode.Types.Mode;

namespace CsiCache.EndToEnd;

/// <summary>
/// Makes the calls external-provisioner and kubelet make, in their order and with their path
/// shapes, and remembers what it did so that disposing undoes it (unpublish, unstage, delete)
/// even when the test failed half-way.
/// </summary>
public sealed class Kubelet(PluginProcess plugin) : IAsyncDisposable
{
    private readonly List<(string VolumeId, string Target)> _published = [];
    private readonly List<(string VolumeId, string Staging)> _staged = [];
    private readonly List<string> _created = [];

    public static VolumeCapability ReaderCapability(Mode mode = Mode.MultiNodeReaderOnly) => new()
    {
        Mount = new VolumeCapability.Types.MountVolume(),
        AccessMode = new VolumeCapability.Types.AccessMode { Mode = mode },
    };

    /// <summary>external-provisioner: CreateVolume for a PVC of a dataset StorageClass.</summary>
    public async Task<Volume> CreateDatasetAsync(string source, params (string Key, string Value)[] parameters)
    {
        var request = new CreateVolumeRequest { Name = "pvc-" + Guid.NewGuid().ToString("N")[..12] };
        request.VolumeCapabilities.Add(ReaderCapability());
        request.Parameters["source"] = source;
        foreach (var (key, value) in parameters)
        {
            request.Parameters[key] = value;
        }

        var volume = (await plugin.Controller.CreateVolumeAsync(request)).Volume;
        _created.Add(volume.VolumeId);
        return volume;
    }

    /// <summary>kubelet MountDevice: NodeStageVolume at plugins/kubernetes.io/csi/DRIVER/SHA256(handle)/globalmount.</summary>
    public async Task<string> StageAsync(Volume volume, Dictionary<string, string>? secrets = null, DateTime? deadline = null)
    {
        var staging = plugin.Paths.StagingPath(volume.VolumeId);
        var request = new NodeStageVolumeRequest
        {
            VolumeId = volume.VolumeId, StagingTargetPath = staging, VolumeCapability = ReaderCapability(),
        };
        request.VolumeContext.Add(volume.VolumeContext);
        if (secrets is not null)
        {
            request.Secrets.Add(secrets);
        }

        _staged.Add((volume.VolumeId, staging));
        await plugin.Node.NodeStageVolumeAsync(request, deadline: deadline ?? DateTime.UtcNow.AddMinutes(2));
        return staging;
    }

    /// <summary>kubelet SetUp: NodePublishVolume at pods/UID/volumes/kubernetes.io~csi/PV/mount.</summary>
    public async Task<string> PublishAsync(Volume volume, string staging, string? podUid = null)
    {
        var target = plugin.Paths.TargetPath(podUid ?? Guid.NewGuid().ToString(), "pv-" + volume.VolumeId[^8..]);
        var request = new NodePublishVolumeRequest
        {
            VolumeId = volume.VolumeId, StagingTargetPath = staging, TargetPath = target,
            VolumeCapability = ReaderCapability(), Readonly = true,
        };
        request.VolumeContext.Add(volume.VolumeContext);
        _published.Add((volume.VolumeId, target));
        await plugin.Node.NodePublishVolumeAsync(request);
        return target;
    }

    /// <summary>Stage and publish, as kubelet does for a pod's PVC.</summary>
    public async Task<string> MountForPodAsync(Volume volume, Dictionary<string, string>? secrets = null) =>
        await PublishAsync(volume, await StageAsync(volume, secrets));

    /// <summary>
    /// kubelet SetUp for an inline (ephemeral) CSI volume in a pod spec: no CreateVolume, no stage;
    /// a volume handle of kubelet's making ("csi-" + SHA256), the pod's attributes in the volume
    /// context with csi.storage.k8s.io/ephemeral=true, SINGLE_NODE_WRITER (kubelet's fixed mode
    /// for inline volumes) and the secrets of nodePublishSecretRef.
    /// </summary>
    public async Task<(string VolumeId, string Target)> PublishInlineAsync(Dictionary<string, string> attributes,
        Dictionary<string, string>? secrets = null)
    {
        var podUid = Guid.NewGuid().ToString();
        var volumeId = "csi-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes(podUid + "dataset")));
        var target = plugin.Paths.TargetPath(podUid, "dataset");
        var request = new NodePublishVolumeRequest
        {
            VolumeId = volumeId, TargetPath = target, VolumeCapability = ReaderCapability(Mode.SingleNodeWriter), Readonly = false,
        };
        request.VolumeContext.Add(attributes);
        request.VolumeContext["csi.storage.k8s.io/ephemeral"] = "true";
        request.VolumeContext["csi.storage.k8s.io/pod.name"] = "trainer-0";
        request.VolumeContext["csi.storage.k8s.io/pod.namespace"] = "ml";
        request.VolumeContext["csi.storage.k8s.io/pod.uid"] = podUid;
        request.VolumeContext["csi.storage.k8s.io/serviceAccount.name"] = "default";
        if (secrets is not null)
        {
            request.Secrets.Add(secrets);
        }

        _published.Add((volumeId, target));
        await plugin.Node.NodePublishVolumeAsync(request);
        return (volumeId, target);
    }

    public async Task UnpublishAsync(string volumeId, string target)
    {
        await plugin.Node.NodeUnpublishVolumeAsync(new NodeUnpublishVolumeRequest { VolumeId = volumeId, TargetPath = target });
        _published.Remove((volumeId, target));
    }

    public async Task UnstageAsync(string volumeId, string staging)
    {
        await plugin.Node.NodeUnstageVolumeAsync(new NodeUnstageVolumeRequest { VolumeId = volumeId, StagingTargetPath = staging });
        _staged.Remove((volumeId, staging));
    }

    public async Task<NodeGetVolumeStatsResponse> StatsAsync(string volumeId, string path) =>
        await plugin.Node.NodeGetVolumeStatsAsync(new NodeGetVolumeStatsRequest { VolumeId = volumeId, VolumePath = path });

    /// <summary>Undoes everything still outstanding, newest first; a failing step does not stop the rest.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var (volumeId, target) in Enumerable.Reverse(_published).ToList())
        {
            await TryAsync(() => UnpublishAsync(volumeId, target));
        }

        foreach (var (volumeId, staging) in Enumerable.Reverse(_staged).ToList())
        {
            await TryAsync(() => UnstageAsync(volumeId, staging));
        }

        foreach (var volumeId in _created)
        {
            await TryAsync(async () => await plugin.Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = volumeId }));
        }
    }

    private static async Task TryAsync(Func<Task> step)
    {
        try
        {
            await step();
        }
        catch (Exception e) when (e is RpcException or ObjectDisposedException or InvalidOperationException)
        {
            // Also when the plugin is gone (a crash test): its channel is disposed.
            // The plugin's own cleanup (and PluginProcess's lazy unmounts) take it from here.
        }
    }
}
