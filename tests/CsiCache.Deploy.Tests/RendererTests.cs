using CsiCache.Deploy.Tests.Kustomize;
using CsiCache.Deploy.Tests.Manifests;
using k8s.Models;
using YamlDotNet.RepresentationModel;

namespace CsiCache.Deploy.Tests;

public sealed class RendererTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("csicache-deploy-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Render_Base_HasTheDriverObjects()
    {
        var set = Deployments.Base();

        Assert.Equal("csicache.dev", set.CsiDriver.Name());
        Assert.Equal("csicache", set.OfType<V1Namespace>().Single().Name());
        Assert.Single(set.OfType<V1DaemonSet>());
        // The central Deployment is opt-in (deploy/controller), never in the base.
        Assert.Empty(set.OfType<V1Deployment>());
        Assert.Equal(
            ["csicache-http-example", "csicache-local", "csicache-s3-example"],
            set.OfType<V1StorageClass>().Select(s => s.Name()).Order(StringComparer.Ordinal));
        // Examples (and the placeholder Secret above all) stay out of what `apply -k deploy` creates.
        Assert.Empty(set.OfType<V1Secret>());
        Assert.Empty(set.OfType<V1Pod>());
    }

    [Fact]
    public void Render_Images_RewritesOnlyMatchingNames()
    {
        Write("kustomization.yaml", """
            resources:
              - ds.yaml
            images:
              - name: example.com/a
                newTag: "2.0"
              - name: registry:5000/b
                newName: mirror.local/b
              - name: example.com/c
                digest: sha256:0123
            """);
        Write("ds.yaml", """
            apiVersion: apps/v1
            kind: DaemonSet
            metadata: {name: x, namespace: n}
            spec:
              selector: {matchLabels: {a: b}}
              template:
                metadata: {labels: {a: b}}
                spec:
                  initContainers:
                    - {name: i, image: "example.com/a:1.0"}
                  containers:
                    - {name: a, image: "example.com/a:1.0"}
                    - {name: b, image: "registry:5000/b:7"}
                    - {name: c, image: "example.com/c:3"}
                    - {name: d, image: "example.com/a-other:1.0"}
            """);

        var spec = KustomizationRenderer.Render(_dir).OfType<V1DaemonSet>().Single().Spec.Template.Spec;

        Assert.Equal("example.com/a:2.0", spec.InitContainers.Single().Image);
        Assert.Equal(
            ["example.com/a:2.0", "mirror.local/b:7", "example.com/c@sha256:0123", "example.com/a-other:1.0"],
            spec.Containers.Select(c => c.Image));
    }

    [Fact]
    public void Render_DirectoryResource_RendersItsKustomization()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "sub"));
        Write("kustomization.yaml", "resources:\n  - sub\n");
        Write("sub/kustomization.yaml", "resources:\n  - sa.yaml\n");
        Write("sub/sa.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: s, namespace: n}\n");

        Assert.Equal("s", KustomizationRenderer.Render(_dir).OfType<V1ServiceAccount>().Single().Name());
    }

    [Theory]
    [InlineData("namespace: other\nresources: []\n")]
    [InlineData("namePrefix: x-\n")]
    [InlineData("patches: []\n")]
    [InlineData("images:\n  - name: a\n    newImage: b\n")]
    public void Render_UnsupportedKustomizeFeature_Throws(string kustomization)
    {
        // A feature the renderer ignored would make it disagree with kubectl silently.
        Write("kustomization.yaml", kustomization);

        Assert.Throws<NotSupportedException>(() => KustomizationRenderer.Render(_dir));
    }

    [Fact]
    public void Render_FileOutsideTheTree_Throws()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "inner"));
        Write("sa.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: s}\n");
        Write("inner/kustomization.yaml", "resources:\n  - ../sa.yaml\n");

        Assert.Throws<InvalidDataException>(() => KustomizationRenderer.Render(Path.Combine(_dir, "inner")));
    }

    [Fact]
    public void Parse_KindOutsideTheDeployment_Throws()
    {
        // KubernetesClient knows Service; a CSI deployment has none, so it is refused.
        const string yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n";

        var error = Assert.Throws<InvalidDataException>(() => ManifestSet.ParseObjects(yaml));
        Assert.Contains("V1Service", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_UnknownKind_Throws()
    {
        const string yaml = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n";

        Assert.ThrowsAny<Exception>(() => ManifestSet.ParseObjects(yaml));
    }

    [Fact]
    public void Parse_MisspeltField_Throws()
    {
        const string yaml = "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata: {name: d}\nspec: {attachRequried: false}\n";

        var error = Assert.Throws<YamlDotNet.Core.YamlException>(() => ManifestSet.ParseObjects(yaml));
        Assert.Contains("attachRequried", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ghcr.io/csicache/csicache:0.1.0", "ghcr.io/csicache/csicache")]
    [InlineData("registry:5000/x/y:1", "registry:5000/x/y")]
    [InlineData("registry:5000/x/y", "registry:5000/x/y")]
    [InlineData("busybox@sha256:abc", "busybox")]
    [InlineData("busybox:1.36@sha256:abc", "busybox")]
    public void ImageName_StripsTagAndDigest(string image, string name)
    {
        Assert.Equal(name, ContainerArgs.ImageName(image));
    }

    [Fact]
    public void Base_EveryImage_IsNamedInTheKustomizationImages()
    {
        // So a mirror or a new tag is one `images:` edit, never a manifest edit.
        var stream = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(RepoLayout.DeployDir, "kustomization.yaml")))
        {
            stream.Load(reader);
        }

        var root = (YamlMappingNode)stream.Documents[0].RootNode;
        var listed = ((YamlSequenceNode)root.Children[new YamlScalarNode("images")]).Children
            .Select(i => ((YamlScalarNode)((YamlMappingNode)i).Children[new YamlScalarNode("name")]).Value)
            .ToHashSet(StringComparer.Ordinal);

        var used = Deployments.Base().PodSpecs().SelectMany(p => p.Spec.Containers).Select(c => ContainerArgs.ImageName(c.Image)).ToList();

        Assert.NotEmpty(used);
        Assert.All(used, name => Assert.Contains(name, listed));
    }

    private void Write(string relative, string content) => File.WriteAllText(Path.Combine(_dir, relative), content);
}
