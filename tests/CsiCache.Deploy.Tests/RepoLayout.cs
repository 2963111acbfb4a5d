namespace CsiCache.Deploy.Tests;

/// <summary>Where the repository's deploy/ folder is, found from the test binary upwards.</summary>
internal static class RepoLayout
{
    private static readonly Lazy<string> Root = new(FindRoot);

    public static string RepoRoot => Root.Value;

    public static string DeployDir => Path.Combine(RepoRoot, "deploy");

    public static string ExamplesDir => Path.Combine(DeployDir, "examples");

    public static string ControllerDir => Path.Combine(DeployDir, "controller");

    private static string FindRoot()
    {
        // bin/Debug/net10.0 sits a few levels below the repository root; walk up
        // until the kustomize base shows up rather than hard-coding the depth.
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "deploy", "kustomization.yaml")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No deploy/kustomization.yaml above {AppContext.BaseDirectory}");
    }
}
