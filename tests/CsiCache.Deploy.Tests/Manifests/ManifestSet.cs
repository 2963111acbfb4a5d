using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace CsiCache.Deploy.Tests.Manifests;

/// <summary>
/// A rendered set of Kubernetes objects, typed by KubernetesClient's YAML loader.
/// Only the kinds a CSI driver deployment is made of are accepted, so a typo in
/// a kind or an object this checker knows nothing about fails loudly instead of
/// going unchecked.
/// </summary>
internal sealed class ManifestSet
{
    /// <summary>apiVersion/kind to model type: everything deploy/ may contain.</summary>
    public static readonly IReadOnlyDictionary<string, Type> KnownKinds = new Dictionary<string, Type>(StringComparer.Ordinal)
    {
        ["v1/Namespace"] = typeof(V1Namespace),
        ["v1/ServiceAccount"] = typeof(V1ServiceAccount),
        ["v1/Secret"] = typeof(V1Secret),
        ["v1/PersistentVolumeClaim"] = typeof(V1PersistentVolumeClaim),
        ["v1/Pod"] = typeof(V1Pod),
        ["apps/v1/DaemonSet"] = typeof(V1DaemonSet),
        ["apps/v1/Deployment"] = typeof(V1Deployment),
        ["apps/v1/StatefulSet"] = typeof(V1StatefulSet),
        ["storage.k8s.io/v1/CSIDriver"] = typeof(V1CSIDriver),
        ["storage.k8s.io/v1/StorageClass"] = typeof(V1StorageClass),
        ["rbac.authorization.k8s.io/v1/ClusterRole"] = typeof(V1ClusterRole),
        ["rbac.authorization.k8s.io/v1/ClusterRoleBinding"] = typeof(V1ClusterRoleBinding),
        ["rbac.authorization.k8s.io/v1/Role"] = typeof(V1Role),
        ["rbac.authorization.k8s.io/v1/RoleBinding"] = typeof(V1RoleBinding),
    };

    public ManifestSet(IEnumerable<IKubernetesObject<V1ObjectMeta>> objects)
    {
        Objects = objects.ToList();
    }

    public List<IKubernetesObject<V1ObjectMeta>> Objects { get; }

    public static ManifestSet Parse(string yaml)
    {
        return new ManifestSet(ParseObjects(yaml));
    }

    public static List<IKubernetesObject<V1ObjectMeta>> ParseObjects(string yaml)
    {
        // strict: an unknown field (a misspelt "mountPropagaton") is an error, not a silent drop.
        var loaded = KubernetesYaml.LoadAllFromString(yaml, KnownKinds.ToDictionary(), strict: true);
        var result = new List<IKubernetesObject<V1ObjectMeta>>();
        foreach (var item in loaded)
        {
            if (item is not IKubernetesObject<V1ObjectMeta> obj || !KnownKinds.Values.Contains(item.GetType()))
            {
                throw new InvalidDataException($"Unexpected object of type {item?.GetType().Name ?? "null"} in rendered manifests");
            }

            result.Add(obj);
        }

        return result;
    }

    public static ManifestSet operator +(ManifestSet left, ManifestSet right)
    {
        return new ManifestSet(left.Objects.Concat(right.Objects));
    }

    public IEnumerable<T> OfType<T>() => Objects.OfType<T>();

    public V1CSIDriver CsiDriver => OfType<V1CSIDriver>().Single();

    /// <summary>Every pod template (DaemonSet, Deployment, StatefulSet) and bare Pod spec, with a label for messages.</summary>
    public IEnumerable<(string Owner, string Namespace, V1PodSpec Spec)> PodSpecs()
    {
        foreach (var ds in OfType<V1DaemonSet>())
        {
            yield return ($"DaemonSet/{ds.Name()}", ds.Namespace() ?? "default", ds.Spec.Template.Spec);
        }

        foreach (var d in OfType<V1Deployment>())
        {
            yield return ($"Deployment/{d.Name()}", d.Namespace() ?? "default", d.Spec.Template.Spec);
        }

        foreach (var s in OfType<V1StatefulSet>())
        {
            yield return ($"StatefulSet/{s.Name()}", s.Namespace() ?? "default", s.Spec.Template.Spec);
        }

        foreach (var p in OfType<V1Pod>())
        {
            yield return ($"Pod/{p.Name()}", p.Namespace() ?? "default", p.Spec);
        }
    }

    /// <summary>The objects as normalized JSON, keyed by kind/namespace/name, for comparing two renderings.</summary>
    public SortedDictionary<string, string> Canonical()
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var obj in Objects)
        {
            var key = $"{obj.ApiVersion}/{obj.Kind}/{obj.Namespace()}/{obj.Name()}";
            if (!result.TryAdd(key, SortKeys(JsonNode.Parse(KubernetesJson.Serialize(obj)))!.ToJsonString()))
            {
                throw new InvalidDataException($"Duplicate object {key}");
            }
        }

        return result;
    }

    /// <summary>Map keys in ordinal order (kustomize sorts them; YAML maps have no order), lists as they are.</summary>
    private static JsonNode? SortKeys(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                var sorted = new JsonObject();
                foreach (var (key, value) in obj.OrderBy(p => p.Key, StringComparer.Ordinal).ToList())
                {
                    obj.Remove(key);
                    sorted[key] = SortKeys(value);
                }

                return sorted;
            case JsonArray array:
                var copy = new JsonArray();
                foreach (var item in array.ToList())
                {
                    array.Remove(item);
                    copy.Add(SortKeys(item));
                }

                return copy;
            default:
                return node;
        }
    }
}
