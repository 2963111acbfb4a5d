using System.Diagnostics;

namespace CsiCache.EndToEnd;

/// <summary><c>csicache demo</c> as a user runs it: a real process, its exit code and its table.</summary>
public sealed class DemoCommandTests
{
    [Fact]
    public async Task Demo_ExitsZero_WarmPassMakesNoOriginRequests_LeavesNothingBehind()
    {
        PluginProcess.RequireRoot();
        var before = Directory.EnumerateDirectories(Path.GetTempPath(), "csicache-demo-*").ToHashSet();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "exec", Path.Combine(AppContext.BaseDirectory, "csicache.dll"), "demo" })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        var output = await stdout + await stderr;

        Assert.True(process.ExitCode == 0, output);
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
        var start = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[]
        {
            "--reuid", "65534", "--regid", "65534", "--clear-groups", "env", "HOME=/tmp",
            "dotnet", "exec", Path.Combine(AppContext.BaseDirectory, "csicache.dll"), "demo",
        })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);

        Assert.Equal(1, process.ExitCode);
        Assert.Equal("csicache demo needs root: it mounts a FUSE filesystem", (await stderr).Trim());
        Assert.Equal("", (await stdout).Trim());
    }
}
