using CsiCache.Deploy.Tests.Manifests;
using k8s.Models;

namespace CsiCache.Deploy.Tests.Checks;

/// <summary>A pod spec of ours: the csicache container and its CSI sidecars, found by image name.</summary>
internal sealed record DriverPod(string Owner, string Namespace, V1PodSpec Spec)
{
    public const string DriverImage = "ghcr.io/csicache/csicache";
    public const string ProvisionerImage = "registry.k8s.io/sig-storage/csi-provisioner";
    public const string RegistrarImage = "registry.k8s.io/sig-storage/csi-node-driver-registrar";
    public const string LivenessProbeImage = "registry.k8s.io/sig-storage/livenessprobe";

    /// <summary>The driver's default name when --driver-name is not given (fixed by the CLI).</summary>
    public const string DefaultDriverName = "csicache.dev";

    public static readonly string[] SidecarImages = [ProvisionerImage, RegistrarImage, LivenessProbeImage];

    public bool IsDaemonSet => Owner.StartsWith("DaemonSet/", StringComparison.Ordinal);

    public V1Container? Driver => Containers(DriverImage).FirstOrDefault();

    public V1Container? Provisioner => Containers(ProvisionerImage).FirstOrDefault();

    public V1Container? Registrar => Containers(RegistrarImage).FirstOrDefault();

    public V1Container? LivenessProbe => Containers(LivenessProbeImage).FirstOrDefault();

    /// <summary>"node", "controller" or "all": the csicache subcommand.</summary>
    public string? Mode => Driver is { } d && ContainerArgs.All(d) is { Count: > 0 } args ? args[0] : null;

    public string DriverName => Driver is { } d ? ContainerArgs.Value(d, "driver-name") ?? DefaultDriverName : DefaultDriverName;

    public IEnumerable<V1Container> Sidecars => Spec.Containers.Where(c => SidecarImages.Contains(ContainerArgs.ImageName(c.Image ?? "")));

    public IEnumerable<V1Container> Containers(string imageName)
    {
        return Spec.Containers.Where(c => ContainerArgs.ImageName(c.Image ?? "") == imageName);
    }

    public V1Volume? Volume(string name) => Spec.Volumes?.FirstOrDefault(v => v.Name == name);

    public static IEnumerable<DriverPod> In(ManifestSet set)
    {
        return set.PodSpecs()
            .Select(p => new DriverPod(p.Owner, p.Namespace, p.Spec))
            .Where(p => p.Driver is not null || p.Sidecars.Any());
    }
}
