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
        (int exitCode, string stdout, string stderr) = await CliProcess.RunCsiCacheAsync(TimeSpan.FromMinutes(1),
            "mount", "file://" + source.Path, target.Path, "--cache-dir", Path.Combine(source.Path, "cache"), "--chunk-size", chunkSize);
        var output = stdout + stderr;

        Assert.NotEqual(0, exitCode);
        Assert.Contains("--chunk-size", output, StringComparison.Ordinal);
        Assert.DoesNotContain(HostMounts.All(), m => m.MountPoint == target.Path);
    }

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("csicache-e2e-mountcmd-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
