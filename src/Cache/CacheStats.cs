namespace CsiCache.Cache;

/// <summary>A snapshot of one cache's counters; counters are cumulative since the cache was opened.</summary>
public sealed record CacheStats
{
    /// <summary>Bytes of chunk files the index holds.</summary>
    public long UsedBytes { get; init; }

    /// <summary>The configured quota.</summary>
    public long QuotaBytes { get; init; }

    /// <summary>Chunks in the index.</summary>
    public long ChunkCount { get; init; }

    /// <summary>Lookups served from the store (by GetOrFetchAsync, TryRead, TryGetCached).</summary>
    public long Hits { get; init; }

    /// <summary>
    /// GetOrFetchAsync calls that found nothing stored (a caller that joined another's fetch
    /// counts too). A TryRead/TryGetCached miss is not counted: the caller's follow-up
    /// GetOrFetchAsync is, so Hits / (Hits + Misses) stays the hit ratio.
    /// </summary>
    public long Misses { get; init; }

    /// <summary>Fetch callbacks started (one per flight, however many callers waited on it).</summary>
    public long Fetches { get; init; }

    /// <summary>Bytes delivered by successful fetches.</summary>
    public long FetchBytes { get; init; }

    /// <summary>Fetches that threw (the error went to every waiter; nothing was cached).</summary>
    public long FetchFailures { get; init; }

    /// <summary>Chunks removed to stay under the quota.</summary>
    public long Evictions { get; init; }

    /// <summary>Bytes removed to stay under the quota.</summary>
    public long EvictedBytes { get; init; }

    /// <summary>Times eviction skipped a chunk because a lease held it.</summary>
    public long PinnedSkips { get; init; }

    /// <summary>Fetched chunks that could not be written (e.g. ENOSPC): they were served from memory and not cached.</summary>
    public long WriteFailures { get; init; }

    /// <summary>Chunks written with O_DIRECT (see <see cref="ChunkCacheOptions.DirectWriteMinBytes"/>).</summary>
    public long DirectWrites { get; init; }

    /// <summary>Fetches running now.</summary>
    public long InFlightFetches { get; init; }

    /// <summary>Bytes of fetch buffers held now (of the <see cref="BufferBudget"/>, which may be shared).</summary>
    public long BufferBytesInUse { get; init; }

    /// <summary>True when used bytes exceed the quota: only while everything evictable is leased (the cache goes over rather than fail a read).</summary>
    public bool OverQuota { get; init; }

    /// <summary>Disk or tmpfs.</summary>
    public CacheMedium Medium { get; init; }
}
