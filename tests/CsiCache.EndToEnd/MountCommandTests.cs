using System.Diagnostics;

namespace CsiCache.EndToEnd;

/// <summary><c>csicache mount</c> as a user runs it: bad flags are refused before anything is mounted.</summary>
public sealed class MountCommandTests
{
    [Theory]
    [InlineData("8Mi")]
    [InlineData("512Ki")]
    [InlineData("lots")]
    public async Task Mount_ChunkSizeOutOfRange_RefusedWithTheFlagNamed_NothingMounted(string chunkSize)
    {
        PluginProcess.RequireRoot();
        using var source = new TempDir();
        using var target = new TempDir();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[]
        {
            "exec", Path.Combine(AppContext.BaseDirectory, "csicache.dll"), "mount", "file://" + source.Path, target.Path,
            "--cache-dir", Path.Combine(source.Path, "cache"), "--chunk-size", chunkSize,
        })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(timeout.Token);
        var output = await stdout + await stderr;

        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains("--chunk-size", output, StringComparison.Ordinal);
        Assert.DoesNotContain(HostMounts.All(), m => m.MountPoint == target.Path);
    }

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("csicache-e2e-mountcmd-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
