using System.Reflection;

namespace CsiCache.Conformance;

/// <summary>
/// The layering of DESIGN.md, checked on the built assemblies: every arrow points one way,
/// and Fuse, Cache and Origins know nothing of each other or of CSI.
/// </summary>
public sealed class ArchitectureTests
{
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["CsiCache.Csi"] = [],
        ["CsiCache.Fuse"] = [],
        ["CsiCache.Cache"] = [],
        ["CsiCache.Origins"] = [],
        ["CsiCache.Datasets"] = ["CsiCache.Fuse", "CsiCache.Cache", "CsiCache.Origins"],
        ["CsiCache.Controller"] = ["CsiCache.Csi"],
        ["CsiCache.Node"] = ["CsiCache.Csi", "CsiCache.Controller", "CsiCache.Datasets", "CsiCache.Fuse"],
    };

    [Fact]
    public void ProjectReferences_FollowTheLayering()
    {
        var checkedAssemblies = 0;
        foreach (var file in Directory.GetFiles(AppContext.BaseDirectory, "CsiCache.*.dll"))
        {
            var name = AssemblyName.GetAssemblyName(file).Name!;
            if (!Allowed.TryGetValue(name, out var allowed))
            {
                continue; // test assemblies
            }

            var ours = Assembly.LoadFrom(file).GetReferencedAssemblies()
                .Select(r => r.Name!)
                .Where(r => r.StartsWith("CsiCache.", StringComparison.Ordinal) || r == "csicache");
            Assert.All(ours, r => Assert.True(allowed.Contains(r), $"{name} must not reference {r}"));
            checkedAssemblies++;
        }

        Assert.True(checkedAssemblies >= 3, $"only {checkedAssemblies} of our assemblies were found next to the tests");
    }
}
