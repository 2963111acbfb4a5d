using CsiCache.Fuse;

namespace CsiCache.Datasets.Tests;

/// <summary>
/// A host plus one mount under a temp directory, torn down in the right order on dispose even when
/// the test failed: the mount is stopped, the host disposed, and anything still mounted below the
/// temp directory is unmounted before it is deleted.
/// </summary>
internal sealed class TestMount : IAsyncDisposable
{
    private TestMount(TempDirectory temp, DatasetHost host, DatasetMount mount)
    {
        Temp = temp;
        Host = host;
        Mount = mount;
    }

    public TempDirectory Temp { get; }

    public DatasetHost Host { get; }

    public DatasetMount Mount { get; }

    public string MountPoint => Mount.MountPoint;

    public string PathOf(string relative) => Path.Combine(MountPoint, relative);

    public static DatasetHostOptions HostOptions(TempDirectory temp, int chunkSize = 4 << 20) => new()
    {
        CacheDirectory = temp.Sub("cache"),
        CacheQuotaBytes = 1L << 30,
        MemoryLimitBytes = 128L << 20,
        ChunkSize = chunkSize,
        OriginTimeout = TimeSpan.FromSeconds(2),
        OriginRetries = 1,
        FuseReaderThreads = 4,
    };

    /// <summary>
    /// Mounts <paramref name="source"/> on a new host. Passthrough is Off unless a test names a
    /// setting, whatever CSICACHE_PASSTHROUGH says: such tests expect zero-message opens from INIT on.
    /// Cold direct opens and directory read-ahead follow the host's defaults (CSICACHE_COLD_DIRECT_IO,
    /// CSICACHE_DIRECTORY_READAHEAD) unless a test names one.
    /// </summary>
    public static async Task<TestMount> StartAsync(
        string source,
        Dictionary<string, string>? parameters = null,
        Func<TempDirectory, DatasetHostOptions>? hostOptions = null,
        Dictionary<string, string>? secrets = null,
        PassthroughMode passthrough = PassthroughMode.Off,
        bool? coldDirectIo = null,
        bool? directoryReadAhead = null)
    {
        Privileges.RequireRootAndFuse();
        var temp = new TempDirectory("mnt");
        DatasetHost? host = null;
        try
        {
            host = new DatasetHost(hostOptions?.Invoke(temp) ?? HostOptions(temp)) { Passthrough = passthrough };
            if (coldDirectIo is bool direct)
            {
                host.ColdDirectIo = direct;
            }
            if (directoryReadAhead is bool readAhead)
            {
                host.ReadAheadDirectories = readAhead;
            }
            DatasetMount mount = await host.MountAsync(
                new DatasetMountOptions(source, parameters ?? [], secrets ?? [], Path.Combine(temp.Path, "mnt")),
                TestContext.Current.CancellationToken);
            return new TestMount(temp, host, mount);
        }
        catch
        {
            if (host is not null)
            {
                await host.DisposeAsync();
            }
            temp.Dispose();
            throw;
        }
    }

    /// <summary>Mounts the same host again at another mount point.</summary>
    public async Task<DatasetMount> MountAgainAsync(string source, string name, Dictionary<string, string>? parameters = null) =>
        await Host.MountAsync(new DatasetMountOptions(source, parameters ?? [], new Dictionary<string, string>(), Path.Combine(Temp.Path, name)),
            TestContext.Current.CancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Mount.StopAsync();
        }
        finally
        {
            try
            {
                await Host.DisposeAsync();
            }
            finally
            {
                bool leftMounted = MountInfo.Find(MountPoint) is not null;
                Temp.Dispose();
                Assert.False(leftMounted, $"{MountPoint} was still mounted after the mount and host were stopped");
            }
        }
    }
}
