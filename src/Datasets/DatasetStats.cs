namespace CsiCache.Datasets;

/// <summary>A snapshot of one mount's counters (cumulative since it was mounted).</summary>
public sealed record DatasetMountStats
{
    /// <summary>Calls made to the origin (list pages, stats, ranged reads); retries inside one call count once.</summary>
    public long OriginRequests { get; init; }

    /// <summary>Bytes read from the origin.</summary>
    public long OriginBytes { get; init; }

    /// <summary>Chunk lookups served from the cache.</summary>
    public long CacheHits { get; init; }

    /// <summary>Chunk lookups that had to wait for a fetch (their own or a concurrent reader's).</summary>
    public long CacheMisses { get; init; }

    /// <summary>Bytes returned to FUSE READ requests.</summary>
    public long BytesServed { get; init; }

    /// <summary>Bytes of this dataset's chunks in the cache now (approximate: chunks this mount has touched).</summary>
    public long CachedBytes { get; init; }
}

/// <summary>Usage of one cache medium.</summary>
public sealed record DatasetCacheUsage(long UsedBytes, long QuotaBytes, long ChunkCount);

/// <summary>A snapshot of the node-wide counters.</summary>
public sealed record DatasetHostStats
{
    /// <summary>The disk cache.</summary>
    public required DatasetCacheUsage Disk { get; init; }

    /// <summary>The memory cache; null until a <c>cacheMedium: memory</c> mount opened it.</summary>
    public DatasetCacheUsage? Memory { get; init; }

    /// <summary>Mounts being served now.</summary>
    public int ActiveMounts { get; init; }

    /// <summary>Chunk lookups served from a cache, over every mount since the host started.</summary>
    public long CacheHits { get; init; }

    /// <summary>Chunk lookups that waited for a fetch.</summary>
    public long CacheMisses { get; init; }

    /// <summary>Calls made to origins.</summary>
    public long OriginRequests { get; init; }

    /// <summary>Bytes read from origins.</summary>
    public long OriginBytes { get; init; }

    /// <summary>Bytes of data buffers held now, of <see cref="DatasetHostOptions.MemoryLimitBytes"/>.</summary>
    public long BufferBytesInUse { get; init; }
}
