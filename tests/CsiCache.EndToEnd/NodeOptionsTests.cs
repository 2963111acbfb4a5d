using CsiCache.Cli.Commands;

namespace CsiCache.EndToEnd;

/// <summary>The node plugin's dataset flags, as the DaemonSet passes them.</summary>
public sealed class NodeOptionsTests
{
    [Fact]
    public void DatasetOptions_DaemonSetFlags_BecomeHostOptions()
    {
        var options = CsiCacheCommand.DatasetOptions("/var/lib/csicache/state", "/var/lib/csicache/cache", "100Gi",
            memoryCacheDirectory: null, memoryCacheSize: "4Gi", memoryLimit: "768Mi");
        Assert.Equal("/var/lib/csicache/cache", options.CacheDirectory);
        Assert.Equal(100L << 30, options.CacheQuotaBytes);
        Assert.Equal(4L << 30, options.MemoryCacheQuotaBytes);
        Assert.Equal(768L << 20, options.MemoryLimitBytes);
        Assert.Null(options.MemoryCacheDirectory);
    }

    [Theory]
    [InlineData("/var/lib/csicache/state", "/var/lib/csicache/cache")]
    [InlineData("/var/lib/csicache/state/", "/var/lib/csicache/cache")]
    [InlineData("/state", "/state/cache")]
    public void DatasetOptions_NoCacheDir_CacheGoesBesideTheStateDir(string stateDir, string expected) =>
        Assert.Equal(expected, CsiCacheCommand.DatasetOptions(stateDir, null, "10Gi", null, null, "512Mi").CacheDirectory);

    [Fact]
    public void DatasetOptions_MemoryCacheDirWithoutSize_QuotaIsTheFilesystemsSize()
    {
        var dir = Directory.CreateTempSubdirectory("csicache-e2e-opts-").FullName;
        try
        {
            var options = CsiCacheCommand.DatasetOptions("/s/state", null, "10Gi", dir, null, "512Mi");
            Assert.Equal(dir, options.MemoryCacheDirectory);
            Assert.Equal(new DriveInfo(dir).TotalSize, options.MemoryCacheQuotaBytes);
        }
        finally
        {
            Directory.Delete(dir);
        }
    }

    [Theory]
    [InlineData("--cache-size", "lots")]
    [InlineData("--cache-size", "0")]
    [InlineData("--memory-limit", "-5Mi")]
    public void DatasetOptions_BadSize_NamesTheFlag(string flag, string value)
    {
        var error = Assert.Throws<ArgumentException>(() => CsiCacheCommand.DatasetOptions("/s/state", null,
            flag == "--cache-size" ? value : "10Gi", null, null, flag == "--memory-limit" ? value : "512Mi"));
        Assert.Contains(flag, error.Message, StringComparison.Ordinal);
    }
}
