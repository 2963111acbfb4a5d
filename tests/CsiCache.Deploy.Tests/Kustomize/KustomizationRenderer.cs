using CsiCache.Deploy.Tests.Manifests;
using k8s;
using k8s.Models;
using YamlDotNet.RepresentationModel;

namespace CsiCache.Deploy.Tests.Kustomize;

/// <summary>
/// The subset of `kubectl kustomize` that deploy/ uses: `resources` (files and
/// directories holding a kustomization, recursively) and `images` (newName,
/// newTag, digest). Any other kustomization field is refused, so this renderer
/// can never quietly produce something different from kustomize; the parity
/// test compares the two wherever kubectl is installed.
/// </summary>
internal static class KustomizationRenderer
{
    private static readonly string[] FileNames = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

    private static readonly HashSet<string> SupportedFields = new(StringComparer.Ordinal) { "apiVersion", "kind", "resources", "images" };

    public static ManifestSet Render(string directory)
    {
        return new ManifestSet(RenderObjects(Path.GetFullPath(directory)));
    }

    private static List<IKubernetesObject<V1ObjectMeta>> RenderObjects(string directory)
    {
        var file = FileNames.Select(n => Path.Combine(directory, n)).FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException($"No kustomization file in {directory}");

        var stream = new YamlStream();
        using (var reader = new StreamReader(file))
        {
            stream.Load(reader);
        }

        var root = (YamlMappingNode)stream.Documents[0].RootNode;
        foreach (var key in root.Children.Keys.Cast<YamlScalarNode>())
        {
            if (!SupportedFields.Contains(key.Value!))
            {
                throw new NotSupportedException($"{file}: kustomization field '{key.Value}' is not supported by the test renderer");
            }
        }

        var objects = new List<IKubernetesObject<V1ObjectMeta>>();
        foreach (var entry in Sequence(root, "resources"))
        {
            var path = Path.GetFullPath(Path.Combine(directory, ((YamlScalarNode)entry).Value!));
            if (Directory.Exists(path))
            {
                objects.AddRange(RenderObjects(path));
            }
            else
            {
                // kustomize loads resource files only from inside the kustomization's
                // own tree; a file elsewhere must come in through its own kustomization.
                if (!path.StartsWith(directory + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                {
                    throw new InvalidDataException($"{file}: resource {path} is outside {directory}");
                }

                objects.AddRange(ManifestSet.ParseObjects(File.ReadAllText(path)));
            }
        }

        foreach (var image in Sequence(root, "images").Cast<YamlMappingNode>())
        {
            ApplyImage(objects, ImageOverride.From(image, file));
        }

        return objects;
    }

    private static IEnumerable<YamlNode> Sequence(YamlMappingNode root, string key)
    {
        return root.Children.TryGetValue(new YamlScalarNode(key), out var node) ? ((YamlSequenceNode)node).Children : [];
    }

    private static void ApplyImage(List<IKubernetesObject<V1ObjectMeta>> objects, ImageOverride image)
    {
        foreach (var spec in new ManifestSet(objects).PodSpecs().Select(p => p.Spec))
        {
            foreach (var container in (spec.Containers ?? []).Concat(spec.InitContainers ?? []))
            {
                if (container.Image is not null && ContainerArgs.ImageName(container.Image) == image.Name)
                {
                    container.Image = image.Apply(container.Image);
                }
            }
        }
    }

    internal sealed record ImageOverride(string Name, string? NewName, string? NewTag, string? Digest)
    {
        public static ImageOverride From(YamlMappingNode node, string file)
        {
            string? Get(string key) => node.Children.TryGetValue(new YamlScalarNode(key), out var v) ? ((YamlScalarNode)v).Value : null;
            foreach (var key in node.Children.Keys.Cast<YamlScalarNode>())
            {
                if (key.Value is not ("name" or "newName" or "newTag" or "digest"))
                {
                    throw new NotSupportedException($"{file}: images field '{key.Value}' is not supported by the test renderer");
                }
            }

            return new ImageOverride(Get("name") ?? throw new InvalidDataException($"{file}: an images entry has no name"), Get("newName"), Get("newTag"), Get("digest"));
        }

        public string Apply(string image)
        {
            var name = ContainerArgs.ImageName(image);
            var suffix = image[name.Length..];
            if (Digest is not null)
            {
                suffix = "@" + Digest;
            }
            else if (NewTag is not null)
            {
                suffix = ":" + NewTag;
            }

            return (NewName ?? name) + suffix;
        }
    }
}
