using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace CsiCache.Deploy.Tests;

/// <summary>
/// No container engine here to build the image, so the Dockerfile is checked by
/// reading: it must publish the CLI project and start the binary that project makes.
/// </summary>
public sealed partial class DockerfileTests
{
    private static readonly string Dockerfile = File.ReadAllText(Path.Combine(RepoLayout.RepoRoot, "Dockerfile"));

    [Fact]
    public void Entrypoint_IsTheCliAssembly()
    {
        var csproj = Path.Combine(RepoLayout.RepoRoot, "src", "Cli", "CsiCache.Cli.csproj");
        var assemblyName = XDocument.Load(csproj).Descendants("AssemblyName").Single().Value;

        Assert.Contains("dotnet publish src/Cli/CsiCache.Cli.csproj -c Release -o /out", Dockerfile, StringComparison.Ordinal);
        Assert.Contains("COPY --from=build /out/ /app/", Dockerfile, StringComparison.Ordinal);
        Assert.Equal($"[\"/app/{assemblyName}\"]", Entrypoint().Match(Dockerfile).Groups[1].Value.Trim());
    }

    [Fact]
    public void Runtime_HasTheNodePluginsTools()
    {
        // mkfs.ext4 (e2fsprogs) and losetup/mount (mount) for local volumes, CA roots for S3/HTTPS.
        var runtime = Dockerfile[Dockerfile.LastIndexOf("FROM ", StringComparison.Ordinal)..];
        foreach (var package in new[] { "e2fsprogs", "mount", "util-linux", "ca-certificates" })
        {
            Assert.Matches($@"apt-get install[^\n]*\s{Regex.Escape(package)}(\s|$)", runtime);
        }
    }

    [Fact]
    public void DockerIgnore_KeepsWhatPublishNeeds()
    {
        var patterns = File.ReadAllLines(Path.Combine(RepoLayout.RepoRoot, ".dockerignore"))
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.TrimStart('/').TrimEnd('/'))
            .ToList();

        foreach (var needed in new[] { "src", "protos", "global.json", "Directory.Build.props", "Directory.Packages.props" })
        {
            Assert.DoesNotContain(needed, patterns);
        }

        Assert.DoesNotContain(patterns, p => p is "*" or "**" or "*.props" or "*.json" or "Directory.*");
        Assert.Contains("**/bin", patterns);
        Assert.Contains("**/obj", patterns);
    }

    [GeneratedRegex(@"^ENTRYPOINT\s+(.+)$", RegexOptions.Multiline)]
    private static partial Regex Entrypoint();
}
