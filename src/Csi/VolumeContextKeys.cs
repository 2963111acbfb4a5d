namespace CsiCache.Csi;

/// <summary>
/// Keys of StorageClass parameters and of the volume context the controller hands to the
/// node. The controller keeps no state for dataset volumes: the dataset spec travels in the
/// volume context, which Kubernetes stores in the PV.
/// </summary>
public static class VolumeContextKeys
{
    /// <summary>Dataset origin URI: s3://bucket/prefix/, https://host/dir/, file:///abs/path.</summary>
    public const string Source = "source";
    public const string SubPath = "subPath";
    public const string CacheMedium = "cacheMedium";
    public const string Prefetch = "prefetch";
    public const string Refresh = "refresh";
    public const string Endpoint = "endpoint";
    public const string Region = "region";
    public const string PathStyle = "pathStyle";

    /// <summary>S3 without credentials (a public bucket): "true" to skip the SDK's credential chain.</summary>
    public const string Anonymous = "anonymous";

    /// <summary>Which kind of volume this is: <c>local</c> or <c>dataset</c>.</summary>
    public const string Kind = "csicache.dev/kind";

    /// <summary>Set by kubelet (podInfoOnMount / inline volumes): true for an inline ephemeral volume.</summary>
    public const string Ephemeral = "csi.storage.k8s.io/ephemeral";

    /// <summary>Prefix of the parameters external-provisioner and kubelet add for themselves.</summary>
    public const string KubernetesPrefix = "csi.storage.k8s.io/";

    /// <summary>The topology segment that pins a local volume to its node.</summary>
    public const string TopologyNodeKey = "topology.csicache.dev/node";
}
