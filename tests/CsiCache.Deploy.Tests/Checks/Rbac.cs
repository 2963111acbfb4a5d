using CsiCache.Deploy.Tests.Manifests;
using k8s.Models;

namespace CsiCache.Deploy.Tests.Checks;

/// <summary>Evaluates RBAC the way the API server's authorizer does, for ServiceAccounts only.</summary>
internal sealed class Rbac(ManifestSet set)
{
    public bool Allows(string saNamespace, string saName, string apiGroup, string resource, string verb, string? objectNamespace)
    {
        return RulesFor(saNamespace, saName, objectNamespace).Any(rule =>
            Matches(rule.ApiGroups, apiGroup) && Matches(rule.Resources, resource) && Matches(rule.Verbs, verb));
    }

    public static bool Binds(IEnumerable<Rbacv1Subject>? subjects, string saNamespace, string saName)
    {
        return (subjects ?? []).Any(s => s.Kind == "ServiceAccount" && s.Name == saName && s.NamespaceProperty == saNamespace);
    }

    private IEnumerable<V1PolicyRule> RulesFor(string saNamespace, string saName, string? objectNamespace)
    {
        var clusterRoles = set.OfType<V1ClusterRole>().ToDictionary(r => r.Name(), StringComparer.Ordinal);
        foreach (var binding in set.OfType<V1ClusterRoleBinding>().Where(b => Binds(b.Subjects, saNamespace, saName)))
        {
            if (binding.RoleRef.Kind == "ClusterRole" && clusterRoles.TryGetValue(binding.RoleRef.Name, out var role))
            {
                foreach (var rule in role.Rules ?? [])
                {
                    yield return rule;
                }
            }
        }

        if (objectNamespace is null)
        {
            yield break;
        }

        // A RoleBinding grants only inside its own namespace, whether it points at a Role or a ClusterRole.
        foreach (var binding in set.OfType<V1RoleBinding>().Where(b => b.Namespace() == objectNamespace && Binds(b.Subjects, saNamespace, saName)))
        {
            IEnumerable<V1PolicyRule>? rules = binding.RoleRef.Kind switch
            {
                "Role" => set.OfType<V1Role>().FirstOrDefault(r => r.Name() == binding.RoleRef.Name && r.Namespace() == objectNamespace)?.Rules,
                "ClusterRole" => clusterRoles.GetValueOrDefault(binding.RoleRef.Name)?.Rules,
                _ => null,
            };
            foreach (var rule in rules ?? [])
            {
                yield return rule;
            }
        }
    }

    private static bool Matches(IList<string>? values, string wanted)
    {
        return values is not null && (values.Contains("*") || values.Contains(wanted));
    }
}
