namespace CsiCache.Datasets;

/// <summary>
/// Node-wide settings of a <see cref="DatasetHost"/>: one per plugin process. It owns the shared
/// chunk caches (disk, and memory when configured), the buffer budget and the origin options.
/// </summary>
public sealed record DatasetHostOptions
{
    /// <summary>Root of the disk chunk cache (the node's NVMe). Created when missing.</summary>
    public required string CacheDirectory { get; init; }

    /// <summary>Bytes of chunks the disk cache may hold.</summary>
    public long CacheQuotaBytes { get; init; } = 10L << 30;

    /// <summary>A directory on tmpfs for <c>cacheMedium: memory</c>; null refuses that medium with a clear error.</summary>
    public string? MemoryCacheDirectory { get; init; }

    /// <summary>Bytes of chunks the memory cache may hold (they count against the node's RAM).</summary>
    public long MemoryCacheQuotaBytes { get; init; } = 1L << 30;

    /// <summary>Bound on data buffers in flight: origin fetches, read-ahead and FUSE read replies.</summary>
    public long MemoryLimitBytes { get; init; } = 512L << 20;

    /// <summary>Chunk size, 1–4 MiB (see ChunkCacheOptions for why those bounds).</summary>
    public int ChunkSize { get; init; } = 4 << 20;

    /// <summary>Limit on one origin request (one attempt).</summary>
    public TimeSpan OriginTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries after the first attempt for transient origin faults.</summary>
    public int OriginRetries { get; init; } = 3;

    /// <summary>FUSE reader threads per mount (each on its own cloned /dev/fuse descriptor).</summary>
    public int FuseReaderThreads { get; init; } = 4;
}
