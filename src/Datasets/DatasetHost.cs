using System.Collections.Concurrent;
using CsiCache.Cache;
using CsiCache.Fuse;
using CsiCache.Origins;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CsiCache.Datasets;

/// <summary>
/// Node-wide: one per plugin process. Owns the shared chunk caches (disk, and memory when a
/// <c>cacheMedium: memory</c> mount asks for it), the buffer budget, the prefetch pool and the
/// origin options. Every mount of the same dataset on the node shares the cache, which is keyed by
/// origin object identity and version, never by volume.
/// </summary>
/// <remarks>
/// <para><b>Memory.</b> <see cref="DatasetHostOptions.MemoryLimitBytes"/> is split once: a quarter
/// (at most 64 MiB) for the FUSE read replies of each mount (the Fuse layer's pool of 1 MiB
/// reply buffers), the rest for chunk buffers (origin fetches, read-ahead, prefetch) through one
/// <see cref="BufferBudget"/> shared by both caches. Readers wait for budget; they never get ENOMEM.
/// The reply pool is per mount, so N mounts hold up to N such slices: see README "Known limits".</para>
/// </remarks>
public sealed partial class DatasetHost : IAsyncDisposable
{
    /// <summary>The FUSE layer's largest READ: its reply buffers are this big.</summary>
    private const int FuseMaxRead = 1 << 20;

    private readonly DatasetHostOptions _options;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly BufferBudget _budget;
    private readonly ChunkCache _diskCache;
    private readonly Lock _memoryCacheGate = new();
    private ChunkCache? _memoryCache;
    private readonly Prefetcher _prefetcher;
    private readonly MountCounters _counters = new();
    private readonly ConcurrentDictionary<DatasetMount, byte> _mounts = new();
    private readonly OriginOptions _originOptions;
    private readonly TimeSpan _originDeadline;
    private readonly int _maxPendingReads;
    private readonly int _maxReadAheadChunks;
    private int _disposed;

    public DatasetHost(DatasetHostOptions options, ILoggerFactory? loggers = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        _options = options;
        _loggers = loggers ?? NullLoggerFactory.Instance;
        _logger = _loggers.CreateLogger("CsiCache.Datasets");

        long fuseReplies = Math.Clamp(options.MemoryLimitBytes / 4, 4L * FuseMaxRead, 64L * FuseMaxRead);
        _maxPendingReads = (int)(fuseReplies / FuseMaxRead);
        long chunkBudget = Math.Max(options.MemoryLimitBytes - fuseReplies, 2L * options.ChunkSize);
        _budget = new BufferBudget(chunkBudget, options.ChunkSize);

        // Read-ahead and prefetch may hold at most half the chunk budget between them, so a reader
        // that misses always finds room soon; 8 workers keep a remote origin's pipe full.
        long chunksInBudget = chunkBudget / options.ChunkSize;
        int workers = (int)Math.Clamp(chunksInBudget / 2, 1, 8);
        _maxReadAheadChunks = (int)Math.Clamp(chunksInBudget / 4, 1, 8);

        _originOptions = new OriginOptions
        {
            RequestTimeout = options.OriginTimeout,
            MaxRetries = options.OriginRetries,
            RetryBaseDelay = TimeSpan.FromTicks(Math.Min(TimeSpan.FromMilliseconds(200).Ticks, options.OriginTimeout.Ticks / 4)),
            RetryMaxDelay = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(5).Ticks, options.OriginTimeout.Ticks)),
        };
        // The longest one origin call can take before the origin's own retry loop gives up, plus
        // slack; metadata calls are cut here so a FUSE reader thread is never held longer.
        _originDeadline = (options.OriginTimeout * (options.OriginRetries + 1)) + (_originOptions.RetryMaxDelay * options.OriginRetries) + TimeSpan.FromSeconds(1);

        Directory.CreateDirectory(options.CacheDirectory);
        _diskCache = OpenCache(options.CacheDirectory, options.CacheQuotaBytes, CacheMedium.Disk);
        _prefetcher = new Prefetcher(workers, urgentCapacity: 256, bulkCapacity: workers * 2, _logger);
        LogHostStarted(_logger, options.CacheDirectory, ByteSize.Format(options.CacheQuotaBytes), ByteSize.Format(options.MemoryLimitBytes), options.ChunkSize);
    }

    /// <summary>How long a mount-time origin check may take before the mount fails as OriginUnavailable.</summary>
    public TimeSpan OriginDeadline => _originDeadline;

    /// <summary>
    /// Validates the source and parameters, opens the origin, checks that it answers (a listing of
    /// the root or subPath, bounded by the origin timeout and retries), then mounts FUSE read-only
    /// at <see cref="DatasetMountOptions.MountPoint"/> (created when missing). Throws
    /// <see cref="DatasetException"/> with a message a person can act on and no secret in it; on
    /// any failure nothing is left mounted.
    /// </summary>
    public async Task<DatasetMount> MountAsync(DatasetMountOptions options, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.MountPoint) || !Path.IsPathFullyQualified(options.MountPoint))
        {
            throw new DatasetException(DatasetErrorKind.MountFailed, "the mount point must be an absolute path");
        }
        string mountPoint = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.MountPoint));
        IReadOnlyDictionary<string, string> parameters = options.Parameters ?? new Dictionary<string, string>();

        DatasetParameters dataset = DatasetParameters.Parse(parameters);
        DatasetSource source;
        try
        {
            source = DatasetSource.Parse(options.Source, parameters);
        }
        catch (OriginInvalidSourceException e)
        {
            throw new DatasetException(DatasetErrorKind.InvalidSource, e.Message);
        }
        ChunkCache cache = dataset.CacheMedium == CacheMediumChoice.Memory ? GetMemoryCache() : _diskCache;

        IOrigin origin;
        try
        {
            origin = OriginFactory.Create(source, options.Secrets ?? new Dictionary<string, string>(), _originOptions);
        }
        catch (OriginException e)
        {
            throw new DatasetException(ErrnoMap.KindOf(e), e.Message);
        }

        var counters = new MountCounters(_counters);
        var counting = new CountingOrigin(origin, counters);
        var stopping = new CancellationTokenSource();
        FuseSession? session = null;
        DirectoryReadAhead? readAhead = null;
        try
        {
            OriginListPage firstPage = await ProbeAsync(counting, source, ct).ConfigureAwait(false);
            PrepareMountPoint(mountPoint);

            ILogger mountLogger = _loggers.CreateLogger("CsiCache.Datasets.Mount");
            var tree = new DatasetTree(counting, dataset.Refresh, TimeProvider.System, _originDeadline);
            tree.SeedRoot(firstPage);
            var reader = new ChunkReader(cache, counting, counters, _prefetcher, _maxReadAheadChunks, mountLogger, stopping.Token);
            readAhead = ReadAheadDirectories ? new DirectoryReadAhead(tree, reader, cache.GetStats().QuotaBytes, mountLogger, stopping.Token) : null;
            var fileSystem = new DatasetFileSystem(tree, reader, mountLogger, stopping.Token, () =>
            {
                CacheStats stats = cache.GetStats();
                return (stats.QuotaBytes, Math.Max(0, stats.QuotaBytes - stats.UsedBytes));
            }, passthrough: Passthrough, coldDirectIo: ColdDirectIo, directoryReadAhead: readAhead);

            var fuseOptions = new FuseOptions
            {
                ReadOnly = true,
                ReaderThreads = _options.FuseReaderThreads,
                MaxRead = FuseMaxRead,
                MaxPendingReads = _maxPendingReads,
                // Only used when the kernel offers it (6.9+) and we have CAP_SYS_ADMIN; else READ.
                EnablePassthrough = Passthrough != PassthroughMode.Off,
                Source = "csicache",
                Subtype = "csicache",
                Log = message => LogFuse(mountLogger, mountPoint, message),
            };
            try
            {
                session = await FuseSession.MountAsync(mountPoint, fileSystem, fuseOptions, ct).ConfigureAwait(false);
            }
            catch (FuseNativeException e)
            {
                throw new DatasetException(DatasetErrorKind.MountFailed, DescribeMountFailure(mountPoint, e), e);
            }
            catch (TimeoutException e)
            {
                throw new DatasetException(DatasetErrorKind.MountFailed, $"mounting {mountPoint}: the kernel did not complete the FUSE handshake in time", e);
            }

            Task prefetch = dataset.Prefetch == PrefetchMode.None
                ? Task.CompletedTask
                : Task.Run(() => DatasetPrefetch.RunAsync(tree, reader, dataset, mountLogger, stopping.Token), CancellationToken.None);
            var mount = new DatasetMount(this, mountPoint, source.Identity, session, tree, reader, fileSystem, counting, counters, stopping, prefetch, readAhead);
            _mounts[mount] = 0;
            LogMounted(_logger, source.Identity, mountPoint, dataset.CacheMedium.ToString(), dataset.Refresh?.ToString() ?? "never");
            return mount;
        }
        catch
        {
            await stopping.CancelAsync().ConfigureAwait(false);
            if (session is not null)
            {
                await session.DisposeAsync().ConfigureAwait(false);
            }
            if (readAhead is not null)
            {
                await readAhead.DisposeAsync().ConfigureAwait(false);
            }
            counting.Dispose();
            stopping.Dispose();
            throw;
        }
    }

    /// <summary>Cache usage per medium and the counters of every mount since the host started.</summary>
    public DatasetHostStats GetStats()
    {
        CacheStats disk = _diskCache.GetStats();
        CacheStats? memory = Volatile.Read(ref _memoryCache)?.GetStats();
        return new DatasetHostStats
        {
            Disk = new DatasetCacheUsage(disk.UsedBytes, disk.QuotaBytes, disk.ChunkCount),
            Memory = memory is null ? null : new DatasetCacheUsage(memory.UsedBytes, memory.QuotaBytes, memory.ChunkCount),
            ActiveMounts = _mounts.Count,
            CacheHits = _counters.Hits,
            CacheMisses = _counters.Misses,
            OriginRequests = _counters.OriginRequests,
            OriginBytes = _counters.OriginBytes,
            BufferBytesInUse = _budget.InUseBytes,
        };
    }

    /// <summary>Unmounts every mount, stops the prefetch pool and closes the caches (their files stay for the next start).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        foreach (DatasetMount mount in _mounts.Keys)
        {
            await mount.StopAsync().ConfigureAwait(false);
        }
        await _prefetcher.DisposeAsync().ConfigureAwait(false);
        _diskCache.Dispose();
        Volatile.Read(ref _memoryCache)?.Dispose();
    }

    internal void Forget(DatasetMount mount) => _mounts.TryRemove(mount, out _);

    /// <summary>The disk cache, for tests that check quotas and trims.</summary>
    internal ChunkCache DiskCache => _diskCache;

    internal Prefetcher Prefetcher => _prefetcher;

    /// <summary>
    /// FUSE_PASSTHROUGH for files the cache holds whole (for mounts made after it is set), from
    /// CSICACHE_PASSTHROUGH: "0" Off, "1" Always (OPEN kept for every file, as the opt-in was before),
    /// anything else Auto, where the first file a mount opens chooses between passthrough and
    /// zero-message opens (see <see cref="DatasetFileSystem"/>). Always is not the default: on this
    /// 2-core VM, 2,000 cached 110 KB files read once per open showed no clear gain over READ (a
    /// backing file is registered per open), zero-message opens beat both on small files, and a
    /// wrong I/O-mode decision fails open(2) with EIO. Used only where the kernel (6.9+) and
    /// CAP_SYS_ADMIN allow.
    /// </summary>
    internal PassthroughMode Passthrough { get; set; } = PassthroughModes.Parse(Environment.GetEnvironmentVariable("CSICACHE_PASSTHROUGH"));

    /// <summary>
    /// FOPEN_DIRECT_IO for opens of files the cache holds nothing of, where OPEN is kept (see
    /// <see cref="DatasetFileSystem"/>), for mounts made after it is set: on unless
    /// CSICACHE_COLD_DIRECT_IO is "0". A mount turns it off by itself once it sees small reads.
    /// </summary>
    internal bool ColdDirectIo { get; set; } = Environment.GetEnvironmentVariable("CSICACHE_COLD_DIRECT_IO") != "0";

    /// <summary>
    /// Directory read-ahead (<see cref="DirectoryReadAhead"/>) for mounts made after it is set: a
    /// directory's small files are fetched in the background once one of them is read. On unless
    /// CSICACHE_DIRECTORY_READAHEAD is "0".
    /// </summary>
    internal bool ReadAheadDirectories { get; set; } = Environment.GetEnvironmentVariable("CSICACHE_DIRECTORY_READAHEAD") != "0";

    private async Task<OriginListPage> ProbeAsync(IOrigin origin, DatasetSource source, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(_originDeadline);
        try
        {
            return await origin.ListAsync("", null, deadline.Token).ConfigureAwait(false);
        }
        catch (OriginException e)
        {
            // Origin messages already name the dataset; say which one only when they do not.
            string message = e.Message.Contains(source.Identity, StringComparison.Ordinal) ? e.Message : $"dataset {source.Identity}: {e.Message}";
            throw new DatasetException(ErrnoMap.KindOf(e), message);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new DatasetException(DatasetErrorKind.OriginUnavailable,
                $"dataset {source.Identity}: the origin did not answer within {_originDeadline.TotalSeconds:0.#}s");
        }
        catch (Exception e) when (e is not OperationCanceledException and not DatasetException)
        {
            // An origin library failing in a way the origin layer did not classify: still the origin's fault.
            throw new DatasetException(DatasetErrorKind.OriginUnavailable, $"dataset {source.Identity}: the origin check failed ({e.GetType().Name})");
        }
    }

    /// <summary>Makes the mount point usable: a dead FUSE mount left there by a crash is removed, a live mount refused.</summary>
    private static void PrepareMountPoint(string mountPoint)
    {
        try
        {
            FuseMount.CleanupStale(mountPoint);
            MountInfoEntry? existing = MountInfo.Find(mountPoint);
            if (existing is not null)
            {
                throw new DatasetException(DatasetErrorKind.MountFailed,
                    $"{mountPoint} is already a mount point ({existing.FileSystemType}); unmount it first");
            }
            Directory.CreateDirectory(mountPoint);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DatasetException(DatasetErrorKind.MountFailed, $"cannot prepare mount point {mountPoint}: {e.Message}", e);
        }
    }

    private static string DescribeMountFailure(string mountPoint, FuseNativeException e)
    {
        const int EPERM = 1, ENOENT = 2, EACCES = 13, ENODEV = 19;
        string hint = e.Errno switch
        {
            EPERM or EACCES => "mounting FUSE needs root (CAP_SYS_ADMIN)",
            ENOENT or ENODEV => "/dev/fuse is missing: load the fuse module or pass the device into the container",
            _ => e.Message,
        };
        return $"mounting {mountPoint} failed: {hint}";
    }

    private ChunkCache GetMemoryCache()
    {
        ChunkCache? cache = Volatile.Read(ref _memoryCache);
        if (cache is not null)
        {
            return cache;
        }
        if (_options.MemoryCacheDirectory is null)
        {
            throw new DatasetException(DatasetErrorKind.InvalidSource,
                "parameter 'cacheMedium' is \"memory\" but this node has no memory cache (start the node plugin with --memory-cache-dir on a tmpfs)");
        }
        lock (_memoryCacheGate)
        {
            if (_memoryCache is null)
            {
                try
                {
                    Directory.CreateDirectory(_options.MemoryCacheDirectory);
                    Volatile.Write(ref _memoryCache, OpenCache(_options.MemoryCacheDirectory, _options.MemoryCacheQuotaBytes, CacheMedium.Memory));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new DatasetException(DatasetErrorKind.MountFailed, $"cannot open the memory cache at {_options.MemoryCacheDirectory}: {e.Message}", e);
                }
            }
            return _memoryCache!;
        }
    }

    private ChunkCache OpenCache(string root, long quota, CacheMedium medium) => new(
        new ChunkCacheOptions
        {
            RootDirectory = root,
            QuotaBytes = quota,
            ChunkSize = _options.ChunkSize,
            Medium = medium,
            MemoryLimitBytes = _budget.LimitBytes,
        },
        TimeProvider.System,
        _budget);

    private static void Validate(DatasetHostOptions options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(options.CacheDirectory);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.CacheQuotaBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MemoryCacheQuotaBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ChunkSize, ChunkCacheOptions.MinChunkSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.ChunkSize, ChunkCacheOptions.MaxChunkSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MemoryLimitBytes, 2L * options.ChunkSize);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.OriginTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegative(options.OriginRetries);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.FuseReaderThreads, 1);
    }

    [LoggerMessage(EventId = 3301, Level = LogLevel.Information, Message = "Dataset host: cache {CacheDirectory} ({Quota}), memory limit {MemoryLimit}, chunks of {ChunkSize} bytes")]
    private static partial void LogHostStarted(ILogger logger, string cacheDirectory, string quota, string memoryLimit, int chunkSize);

    [LoggerMessage(EventId = 3302, Level = LogLevel.Information, Message = "Mounted {Source} at {MountPoint} (cache {Medium}, refresh {Refresh})")]
    private static partial void LogMounted(ILogger logger, string source, string mountPoint, string medium, string refresh);

    [LoggerMessage(EventId = 3303, Level = LogLevel.Warning, Message = "FUSE at {MountPoint}: {Message}")]
    private static partial void LogFuse(ILogger logger, string mountPoint, string message);
}
