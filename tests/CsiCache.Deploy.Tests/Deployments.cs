using CsiCache.Deploy.Tests.Kustomize;
using CsiCache.Deploy.Tests.Manifests;
using k8s.Models;

namespace CsiCache.Deploy.Tests;

/// <summary>Fresh renderings of deploy/ for each test, so a mutation in one never leaks into another.</summary>
internal static class Deployments
{
    public static ManifestSet Base() => KustomizationRenderer.Render(RepoLayout.DeployDir);

    public static ManifestSet Controller() => KustomizationRenderer.Render(RepoLayout.ControllerDir);

    /// <summary>deploy/examples: plain manifests, deliberately outside the kustomize base.</summary>
    public static ManifestSet Examples()
    {
        var files = Directory.GetFiles(RepoLayout.ExamplesDir, "*.yaml").Order(StringComparer.Ordinal);
        return new ManifestSet(files.SelectMany(f => ManifestSet.ParseObjects(File.ReadAllText(f))));
    }

    /// <summary>What a cluster holds once the base and every example are applied.</summary>
    public static ManifestSet BaseWithExamples() => Base() + Examples();

    public static V1DaemonSet NodeDaemonSet(this ManifestSet set) => set.OfType<V1DaemonSet>().Single(d => d.Name() == "csicache-node");

    public static V1Container NodeContainer(this ManifestSet set, string name) =>
        set.NodeDaemonSet().Spec.Template.Spec.Containers.Single(c => c.Name == name);

    public static V1Volume NodeVolume(this ManifestSet set, string name) =>
        set.NodeDaemonSet().Spec.Template.Spec.Volumes.Single(v => v.Name == name);

    public static V1StorageClass StorageClass(this ManifestSet set, string name) => set.OfType<V1StorageClass>().Single(s => s.Name() == name);

    public static void ReplaceArg(this V1Container container, string flag, string? replacement)
    {
        var index = container.Args.ToList().FindIndex(a => a == flag || a.StartsWith(flag + "=", StringComparison.Ordinal));
        Assert.True(index >= 0, $"{container.Name} has no {flag} to replace");
        if (replacement is null)
        {
            container.Args.RemoveAt(index);
        }
        else
        {
            container.Args[index] = replacement;
        }
    }

    /// <summary>
    /// The patch deploy/README.md prescribes before applying deploy/controller:
    /// the node DaemonSet loses its provisioner container.
    /// </summary>
    public static ManifestSet WithoutNodeProvisioner(this ManifestSet set)
    {
        var containers = set.NodeDaemonSet().Spec.Template.Spec.Containers;
        containers.Remove(containers.Single(c => c.Name == "csi-provisioner"));
        return set;
    }
}
