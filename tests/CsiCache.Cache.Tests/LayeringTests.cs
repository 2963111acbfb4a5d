namespace CsiCache.Cache.Tests;

public sealed class LayeringTests
{
    [Fact]
    public void CacheAssembly_ReferencesNoOtherProjectAssembly()
    {
        // DESIGN: "Cache [knows] nothing of FUSE or CSI" — and nothing of origins either.
        string[] ours = typeof(ChunkCache).Assembly.GetReferencedAssemblies()
            .Select(a => a.Name!)
            .Where(name => name.StartsWith("CsiCache.", StringComparison.Ordinal))
            .ToArray();
        Assert.Empty(ours);
    }

    [Fact]
    public void PublicTypes_AreSealedOrValueTypes()
    {
        Type[] open = typeof(ChunkCache).Assembly.GetExportedTypes()
            .Where(t => t.IsClass && !t.IsSealed && !t.IsAbstract)
            .ToArray();
        Assert.Empty(open);
    }
}
