using System.Security.Cryptography;
using System.Text;

namespace CsiCache.Cli.Demo;

/// <summary>
/// The paths kubelet hands a CSI node plugin, under a root that stands in for <c>/</c>:
/// the global (staging) mount <c>var/lib/kubelet/plugins/kubernetes.io/csi/DRIVER/SHA256(volumeHandle)/globalmount</c>
/// and the per-pod target <c>var/lib/kubelet/pods/UID/volumes/kubernetes.io~csi/PV/mount</c>.
/// Like kubelet, it creates the parents and leaves the last component to the plugin.
/// </summary>
internal sealed class KubeletPaths(string root, string driverName = "csicache.dev")
{
    public string Root { get; } = root;

    public string KubeletDirectory => Path.Combine(Root, "var/lib/kubelet");

    public string StagingPath(string volumeId)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(volumeId)));
        var path = Path.Combine(KubeletDirectory, "plugins/kubernetes.io/csi", driverName, hash, "globalmount");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        return path;
    }

    public string TargetPath(string podUid, string pvName)
    {
        var path = Path.Combine(KubeletDirectory, "pods", podUid, "volumes/kubernetes.io~csi", pvName, "mount");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        return path;
    }
}
