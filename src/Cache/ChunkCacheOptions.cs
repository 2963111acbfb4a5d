namespace CsiCache.Cache;

/// <summary>Settings of one <see cref="ChunkCache"/>; one cache (and one set of options) per root directory.</summary>
public sealed record ChunkCacheOptions
{
    /// <summary>1 MiB: the FUSE read size (max_pages) — a smaller chunk would split one kernel read across files.</summary>
    public const int MinChunkSize = 1 << 20;

    /// <summary>4 MiB: a larger chunk makes the first byte of a random read wait for more origin bytes.</summary>
    public const int MaxChunkSize = 4 << 20;

    /// <summary>Directory that holds the chunk files. Created when missing. Owned by one cache at a time (a lock file enforces it).</summary>
    public required string RootDirectory { get; init; }

    /// <summary>Bytes of chunk data the cache may hold (file sizes; file-system overhead is not counted).</summary>
    public required long QuotaBytes { get; init; }

    /// <summary>Bytes per chunk, 1–4 MiB; the last chunk of an object may be shorter, and an object no larger than this is one chunk.</summary>
    public int ChunkSize { get; init; } = MaxChunkSize;

    /// <summary>Eviction starts when used bytes exceed this fraction of the quota …</summary>
    public double HighWatermark { get; init; } = 0.95;

    /// <summary>… and stops once they are at or below this fraction, so eviction runs in batches, not per put.</summary>
    public double LowWatermark { get; init; } = 0.85;

    /// <summary>Bytes of fetch buffers in flight at once (ignored when a shared <see cref="BufferBudget"/> is passed to the cache).</summary>
    public long MemoryLimitBytes { get; init; } = 256L << 20;

    /// <summary>Disk or tmpfs; see <see cref="CacheMedium"/>.</summary>
    public CacheMedium Medium { get; init; } = CacheMedium.Disk;

    /// <summary>
    /// Keep chunk files trustworthy across a power loss (without care, ext4/xfs may show a file of
    /// the right length full of zeros). Done in batches, not per chunk: one syncfs every
    /// <see cref="SyncInterval"/>, and after a crash the chunks written since the last one are
    /// discarded (see SyncCheckpoint). Off only for tests or throwaway caches. Never done on
    /// <see cref="CacheMedium.Memory"/>.
    /// </summary>
    public bool FlushToDisk { get; init; } = true;

    /// <summary>
    /// Chunks at least this long are written with O_DIRECT (disk medium; 0: never), and the readers
    /// waiting for them are served from the fetch buffer. Smaller ones go through the page cache,
    /// where a reread is a memory copy and the write costs little.
    /// </summary>
    public int DirectWriteMinBytes { get; init; } = 1 << 20;

    /// <summary>
    /// Chunks just written with O_DIRECT whose fetch buffers are kept for the readers right behind
    /// them (a sequential reader's next READs), instead of reading the file back into the page
    /// cache: a FIFO of this many, each leaving it once read to its end (or, pushed out unread,
    /// primed into the page cache then). Counted in the <see cref="BufferBudget"/>. -1 (the
    /// default): an eighth of the budget's chunks, at most 32; 0: none.
    /// </summary>
    public int RecentChunks { get; init; } = -1;

    /// <summary>How often written chunks are made durable (with <see cref="FlushToDisk"/>): at most this much fetching is lost to a crash.</summary>
    public TimeSpan SyncInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How stale a chunk's persisted last-access time (its file mtime) may get before a hit
    /// rewrites it. The in-memory LRU order is exact; the file times only order the cache after
    /// a restart, so they are refreshed at most this often per chunk to keep hits free of writes.
    /// </summary>
    public TimeSpan AccessTimeResolution { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Open fds kept on idle chunks, so that repeated reads of a hot chunk skip open/close.
    /// Bounded because a large cache has far more chunks than a process should hold fds, and
    /// lowered to half of what RLIMIT_NOFILE leaves after 1,024 others. Sized for a data set's
    /// worth of small files: once the kernel's caches are dropped, reopening an object file reads
    /// its folder and inode from disk again, which cost a small-file read a fifth of its time
    /// with 1,024 (BENCHMARKS.md).
    /// </summary>
    public int MaxIdleOpenFiles { get; init; } = 16384;

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(RootDirectory);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(QuotaBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(ChunkSize, MinChunkSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ChunkSize, MaxChunkSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MemoryLimitBytes);
        if (!(LowWatermark > 0 && LowWatermark <= HighWatermark && HighWatermark <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(HighWatermark), $"Need 0 < LowWatermark ({LowWatermark}) <= HighWatermark ({HighWatermark}) <= 1.");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(MaxIdleOpenFiles);
        ArgumentOutOfRangeException.ThrowIfNegative(DirectWriteMinBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(RecentChunks, -1);
        if (SyncInterval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(SyncInterval), SyncInterval, "Must be positive.");
        }
        if (AccessTimeResolution < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(AccessTimeResolution), AccessTimeResolution, "Must not be negative.");
        }
    }
}
