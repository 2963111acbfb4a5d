using CsiCache.Deploy.Tests.Checks;
using CsiCache.Deploy.Tests.Manifests;

namespace CsiCache.Deploy.Tests;

/// <summary>The shipped manifests pass every check.</summary>
public sealed class DeployCheckTests
{
    public static TheoryData<string> CheckNames => new(DeployChecks.All.Keys);

    [Theory]
    [MemberData(nameof(CheckNames))]
    public void BaseWithExamples_PassesCheck(string check)
    {
        var set = Deployments.BaseWithExamples();

        Assert.Empty(DeployChecks.All[check](set));
    }

    [Fact]
    public void BaseWithExamples_HasSomethingForEveryCheckToLookAt()
    {
        // A check that finds nothing to inspect would pass vacuously: make sure the
        // set has the pods, sidecars and classes the checks walk over.
        var set = Deployments.BaseWithExamples();
        var pods = DriverPod.In(set).ToList();

        Assert.Contains(pods, p => p.IsDaemonSet && p.Mode == "node" && p.Provisioner is not null && p.Registrar is not null && p.LivenessProbe is not null);
        Assert.Contains(set.OfType<k8s.Models.V1Pod>(), p => p.Spec.Volumes.Any(v => v.Csi is not null));
        Assert.NotEmpty(set.OfType<k8s.Models.V1PersistentVolumeClaim>());
        Assert.NotEmpty(set.OfType<k8s.Models.V1StatefulSet>());
    }

    [Fact]
    public void Controller_NextToTheBase_IsAReportedRace()
    {
        // deploy/controller is opt-in because of exactly this.
        var set = Deployments.Base() + Deployments.Controller();

        var problems = DeployChecks.ProvisionerRace(set);

        Assert.Contains(problems, p => p.Contains("csicache-controller", StringComparison.Ordinal) && p.Contains("csicache-node", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(CheckNames))]
    public void Controller_WithTheNodeProvisionerRemoved_PassesCheck(string check)
    {
        // The opt-in central mode, as deploy/README.md tells how to apply it.
        var set = Deployments.Base().WithoutNodeProvisioner() + Deployments.Controller() + Deployments.Examples();

        Assert.Empty(DeployChecks.All[check](set));
    }

    [Fact]
    public void ProvisionerFlags_AreReadInBothSpellings()
    {
        var container = new k8s.Models.V1Container
        {
            Name = "c",
            Args = ["--a=1", "--b", "2", "--flag", "--off=false", "--x=$(V)"],
            Env = [new k8s.Models.V1EnvVar { Name = "V", Value = "expanded" }],
        };

        Assert.Equal("1", ContainerArgs.Value(container, "a"));
        Assert.Equal("2", ContainerArgs.Value(container, "b"));
        Assert.True(ContainerArgs.IsSet(container, "flag"));
        Assert.False(ContainerArgs.IsSet(container, "off"));
        Assert.False(ContainerArgs.IsSet(container, "missing"));
        Assert.Equal("expanded", ContainerArgs.Value(container, "x"));
    }
}
