namespace CsiCache.EndToEnd;

/// <summary><c>csicache demo</c> as a user runs it: a real process, its exit code and its table.</summary>
public sealed class DemoCommandTests
{
    [Fact]
    public async Task Demo_ExitsZero_WarmPassMakesNoOriginRequests_LeavesNothingBehind()
    {
        PluginProcess.RequireRoot();
        var before = Directory.EnumerateDirectories(Path.GetTempPath(), "csicache-demo-*").ToHashSet();
        (int exitCode, string stdout, string stderr) = await CliProcess.RunCsiCacheAsync(TimeSpan.FromMinutes(2), "demo");
        var output = stdout + stderr;

        Assert.True(exitCode == 0, output);
        Assert.Contains("every byte matched", output, StringComparison.Ordinal);
        var warm = output.Split('\n').Single(l => l.StartsWith("warm ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var cold = output.Split('\n').Single(l => l.StartsWith("cold ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("0", warm[4]);
        Assert.NotEqual("0", cold[4]);
        Assert.Equal(before, Directory.EnumerateDirectories(Path.GetTempPath(), "csicache-demo-*").ToHashSet());
        Assert.DoesNotContain(HostMounts.All(), m => m.MountPoint.Contains("csicache-demo-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Demo_NotRoot_SaysSoPlainly_ExitsOne()
    {
        PluginProcess.RequireRoot();
        // Drop to nobody for this one process; the check must come before anything is mounted or served.
        (int exitCode, string stdout, string stderr) = await CliProcess.RunAsync("setpriv",
        [
            "--reuid", "65534", "--regid", "65534", "--clear-groups", "env", "HOME=/tmp",
            "dotnet", "exec", CliProcess.Dll, "demo",
        ], TimeSpan.FromMinutes(1));

        Assert.Equal(1, exitCode);
        Assert.Equal("csicache demo needs root: it mounts a FUSE filesystem", stderr.Trim());
        Assert.Equal("", stdout.Trim());
    }
}
