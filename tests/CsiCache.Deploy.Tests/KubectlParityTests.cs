using CsiCache.Deploy.Tests.Kustomize;
using CsiCache.Deploy.Tests.Manifests;

namespace CsiCache.Deploy.Tests;

/// <summary>
/// The offline renderer must agree with the real `kubectl kustomize`, object for object.
/// Without kubectl these tests are reported as skipped, not passed; CI sets
/// CSICACHE_REQUIRE_KUBECTL=1 so a missing kubectl fails there.
/// </summary>
public sealed class KubectlParityTests
{
    [Theory]
    [InlineData("deploy")]
    [InlineData("deploy/controller")]
    public void KubectlKustomize_MatchesRenderer(string relative)
    {
        var kubectl = Kubectl.Find();
        if (kubectl is null)
        {
            Assert.False(Environment.GetEnvironmentVariable("CSICACHE_REQUIRE_KUBECTL") == "1", "kubectl is required (CSICACHE_REQUIRE_KUBECTL=1) but not on PATH: run scripts/install-kubectl.sh");
            Assert.Skip("kubectl not on PATH: run scripts/install-kubectl.sh to compare with kubectl kustomize");
        }

        var dir = Path.Combine(RepoLayout.RepoRoot, relative);
        var fromKubectl = ManifestSet.Parse(Kubectl.Kustomize(kubectl, dir)).Canonical();
        var fromRenderer = KustomizationRenderer.Render(dir).Canonical();

        Assert.Equal(fromKubectl.Keys, fromRenderer.Keys);
        foreach (var (key, json) in fromKubectl)
        {
            Assert.True(json == fromRenderer[key], $"{key} differs:\nkubectl:  {json}\nrenderer: {fromRenderer[key]}");
        }
    }
}
