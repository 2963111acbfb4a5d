using Microsoft.Extensions.Logging;

namespace CsiCache.Datasets;

/// <summary>
/// Node-wide: one per plugin process. Owns the shared chunk caches, the buffer budget and the
/// origin options; every mount of the same dataset on the node shares the cache, which is keyed
/// by origin object identity and version, never by volume.
/// </summary>
public sealed class DatasetHost : IAsyncDisposable
{
    public DatasetHost(DatasetHostOptions options, ILoggerFactory? loggers = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _ = loggers;
    }

    /// <summary>
    /// Validates the source and parameters, opens the origin, checks that it answers, then mounts
    /// FUSE read-only at <see cref="DatasetMountOptions.MountPoint"/>. Throws
    /// <see cref="DatasetException"/>; on any failure nothing is left mounted.
    /// </summary>
    public Task<DatasetMount> MountAsync(DatasetMountOptions options, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>Cache usage per medium and node-wide counters.</summary>
    public DatasetHostStats GetStats() => throw new NotImplementedException();

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
