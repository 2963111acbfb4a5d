using CsiCache.Deploy.Tests.Checks;
using CsiCache.Deploy.Tests.Manifests;
using k8s.Models;

namespace CsiCache.Deploy.Tests;

/// <summary>
/// Every check can fail: each case breaks one thing in a fresh rendering of the
/// shipped manifests and expects the named check to say so.
/// </summary>
public sealed class CheckMutationTests
{
    private static readonly Dictionary<string, Mutation> Mutations = new Mutation[]
    {
        new("socket", "provisioner dials another socket", "is not csicache's endpoint",
            s => s.NodeContainer("csi-provisioner").ReplaceArg("--csi-address", "--csi-address=/csi/other.sock")),
        new("socket", "livenessprobe lacks the socket volume", "does not mount volume",
            s => s.NodeContainer("liveness-probe").VolumeMounts.Clear()),
        new("socket", "registrar without --csi-address", "no --csi-address",
            s => s.NodeContainer("node-driver-registrar").ReplaceArg("--csi-address", null)),
        new("socket", "csicache on TCP", "unix:///",
            s => s.NodeContainer("csicache").ReplaceArg("--endpoint", "--endpoint=tcp://0.0.0.0:10000")),
        new("registrar", "plugin dir moved on the host", "is not the socket's host path",
            s => s.NodeVolume("plugin-dir").HostPath.Path = "/var/lib/kubelet/plugins/elsewhere"),
        new("registrar", "registration dir wrong", "/registration must be",
            s => s.NodeVolume("registration-dir").HostPath.Path = "/var/lib/kubelet/plugins"),
        new("registrar", "registrar removed", "without node-driver-registrar",
            s => s.NodeDaemonSet().Spec.Template.Spec.Containers.Remove(s.NodeContainer("node-driver-registrar"))),
        new("driver-name", "StorageClass for another driver", "is not the driver",
            s => s.StorageClass("csicache-s3-example").Provisioner = "csicache.example"),
        new("driver-name", "--driver-name differs", "serves driver",
            s => s.NodeContainer("csicache").ReplaceArg("--driver-name", "--driver-name=other.dev")),
        new("driver-name", "inline volume names another driver", "names driver",
            s => s.OfType<V1Pod>().Single(p => p.Name() == "mnist-inline").Spec.Volumes[0].Csi.Driver = "other.dev"),
        new("driver-name", "CSIDriver renamed", "is not the driver",
            s => s.CsiDriver.Metadata.Name = "renamed.dev"),
        new("node-privileges", "not privileged", "not privileged",
            s => s.NodeContainer("csicache").SecurityContext.Privileged = false),
        new("node-privileges", "kubelet dir not Bidirectional", "must be Bidirectional",
            s => s.NodeContainer("csicache").VolumeMounts.Single(m => m.MountPath == "/var/lib/kubelet").MountPropagation = "HostToContainer"),
        new("node-privileges", "no host /dev", "/dev/fuse",
            s => { var v = s.NodeVolume("dev"); v.HostPath = null; v.EmptyDir = new V1EmptyDirVolumeSource(); }),
        new("node-privileges", "node id not the node name", "--node-id",
            s => s.NodeContainer("csicache").ReplaceArg("--node-id", "--node-id=fixed")),
        new("service-accounts", "ServiceAccount missing", "does not exist",
            s => s.Objects.Remove(s.OfType<V1ServiceAccount>().Single())),
        new("service-accounts", "ClusterRoleBinding to a missing role", "does not exist",
            s => s.OfType<V1ClusterRoleBinding>().First().RoleRef.Name = "missing"),
        new("service-accounts", "node ServiceAccount unbound", "bound to no role",
            s => { s.Objects.RemoveAll(o => o is V1ClusterRoleBinding or V1RoleBinding); }),
        new("service-accounts", "runs as default", "default ServiceAccount",
            s => s.NodeDaemonSet().Spec.Template.Spec.ServiceAccountName = null),
        new("rbac-permissions", "cannot create capacity objects", "may not create storage.k8s.io/csistoragecapacities",
            s => s.OfType<V1Role>().Single(r => r.Name() == "csicache-node-capacity").Rules[0].Verbs.Remove("create")),
        new("rbac-permissions", "cannot read its DaemonSet", "apps/daemonsets",
            s => s.OfType<V1Role>().Single(r => r.Name() == "csicache-node-capacity").Rules[2].Resources.Remove("daemonsets")),
        new("rbac-permissions", "cannot create PVs", "may not create core/persistentvolumes",
            s => s.OfType<V1ClusterRole>().Single().Rules[0].Verbs.Remove("create")),
        new("images", "untagged image", "no pinned tag",
            s => s.NodeContainer("csicache").Image = "ghcr.io/csicache/csicache"),
        new("images", "latest", "no pinned tag",
            s => s.NodeContainer("liveness-probe").Image = "registry.k8s.io/sig-storage/livenessprobe:latest"),
        new("liveness", "health port moved", "the livenessprobe sidecar serves",
            s => s.NodeContainer("liveness-probe").ReplaceArg("--health-port", "--health-port=9999")),
        new("liveness", "probe on an undeclared port", "is not one of the container's ports",
            s => s.NodeContainer("csicache").Ports.Clear()),
        new("liveness", "no livenessprobe sidecar", "no livenessprobe sidecar",
            s => s.NodeDaemonSet().Spec.Template.Spec.Containers.Remove(s.NodeContainer("liveness-probe"))),
        new("liveness", "registrar probe port", "--http-endpoint",
            s => s.NodeContainer("node-driver-registrar").ReplaceArg("--http-endpoint", "--http-endpoint=:9999")),
        new("binding-mode", "local class binds immediately", "must use WaitForFirstConsumer",
            s => s.StorageClass("csicache-local").VolumeBindingMode = "Immediate"),
        new("binding-mode", "dataset class nobody serves", "would stay Pending",
            s => s.StorageClass("csicache-http-example").VolumeBindingMode = "Immediate"),
        new("node-provisioner", "not distributed", "needs --node-deployment",
            s => s.NodeContainer("csi-provisioner").ReplaceArg("--node-deployment", null)),
        new("node-provisioner", "NODE_NAME wrong", "NODE_NAME",
            s => s.NodeContainer("csi-provisioner").Env.Single(e => e.Name == "NODE_NAME").ValueFrom.FieldRef.FieldPath = "metadata.name"),
        new("node-provisioner", "capacity ignored by the scheduler", "storageCapacity",
            s => s.CsiDriver.Spec.StorageCapacity = false),
        new("node-provisioner", "capacity owner unknown", "POD_NAME",
            s => s.NodeContainer("csi-provisioner").Env.Remove(s.NodeContainer("csi-provisioner").Env.Single(e => e.Name == "POD_NAME"))),
        new("node-provisioner", "no topology", "Topology=true",
            s => s.NodeContainer("csi-provisioner").ReplaceArg("--feature-gates", null)),
        new("node-provisioner", "leader election on nodes", "--leader-election",
            s => s.NodeContainer("csi-provisioner").Args.Add("--leader-election")),
        new("provisioner-race", "central controller added", "would both provision",
            s => s.Objects.AddRange(Deployments.Controller().Objects)),
        new("claims", "dataset claimed read-write", "must be ReadOnlyMany",
            s => s.OfType<V1PersistentVolumeClaim>().Single().Spec.AccessModes = ["ReadWriteOnce"]),
        new("claims", "class that does not exist", "does not exist",
            s => s.OfType<V1StatefulSet>().Single().Spec.VolumeClaimTemplates[0].Spec.StorageClassName = "nope"),
        new("claims", "local volume shared", "ReadWriteOnce or ReadWriteOncePod",
            s => s.OfType<V1StatefulSet>().Single().Spec.VolumeClaimTemplates[0].Spec.AccessModes = ["ReadWriteMany"]),
        new("claims", "inline dataset writable", "must be readOnly",
            s => s.OfType<V1Pod>().Single(p => p.Name() == "mnist-inline").Spec.Volumes[0].Csi.ReadOnlyProperty = false),
        new("namespaces", "namespace not created", "is not created",
            s => s.Objects.Remove(s.OfType<V1Namespace>().Single())),
        new("namespaces", "secret in a namespace that does not exist", "secret namespace",
            s => s.StorageClass("csicache-s3-example").Parameters["csi.storage.k8s.io/node-stage-secret-namespace"] = "elsewhere"),
    }.ToDictionary(m => $"{m.Check}: {m.Description}", StringComparer.Ordinal);

    public static TheoryData<string> Cases => new(Mutations.Keys);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Mutation_IsReportedByItsCheck(string name)
    {
        var mutation = Mutations[name];
        var set = Deployments.BaseWithExamples();
        Assert.Empty(DeployChecks.All[mutation.Check](set));

        mutation.Apply(set);
        var problems = DeployChecks.All[mutation.Check](set);

        Assert.True(
            problems.Any(p => p.Contains(mutation.Expected, StringComparison.Ordinal)),
            $"expected a problem containing '{mutation.Expected}', got:\n{string.Join("\n", problems)}");
    }

    [Fact]
    public void EveryCheck_HasAMutationThatBreaksIt()
    {
        Assert.Equal(
            DeployChecks.All.Keys.Order(StringComparer.Ordinal),
            Mutations.Values.Select(m => m.Check).Distinct().Order(StringComparer.Ordinal));
    }

    private sealed record Mutation(string Check, string Description, string Expected, Action<ManifestSet> Apply);
}
