using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cache;

/// <summary>
/// The node-local chunk store: fixed-size chunks of origin objects in files under one root
/// directory (on NVMe or tmpfs), an in-memory index rebuilt from those files at start, LRU
/// eviction between a high and a low watermark, one origin fetch per missing chunk however many
/// readers want it, and a bound on the fetch buffers in flight. Thread-safe.
/// </summary>
/// <remarks>
/// The cache knows nothing of FUSE, CSI or origins: the caller says which chunk it wants, how
/// long it is, and how to fetch it. See src/Cache/README.md for the decisions behind it.
/// </remarks>
public sealed class ChunkCache : IDisposable
{
    // Writes, evictions and whole-object opens serialise per object on one of these: a chunk
    // written into a file that an eviction is unlinking would be indexed but lost, and a
    // whole-object open must see every chunk of the file it opens.
    private const int StripeCount = 64;

    private readonly ChunkCacheOptions _options;
    private readonly TimeProvider _time;
    private readonly ChunkStore _store;
    private readonly SafeFileHandle _lockFile;
    private readonly ConcurrentDictionary<ChunkKey, ChunkEntry> _index;

    // Per object: how many of its chunks are indexed, and whether it was ever opened whole (a
    // passthrough backing file may read it). Changed only under the object's stripe lock.
    private readonly ConcurrentDictionary<ObjectKey, ObjectState> _objects = new();
    private readonly SingleFlight<ChunkKey, ChunkSource> _flights;
    private readonly Lock[] _stripes;
    private readonly Lock _evictionGate = new();
    private readonly CancellationTokenSource _disposed = new();
    private readonly long _highBytes;
    private readonly long _lowBytes;
    private readonly long _accessResolutionTicks;
    private readonly IdleHandles _idle;
    private readonly SyncCheckpoint? _sync;
    private readonly ChunkBlocks _blocks;

    // Chunks just fetched and written around the page cache, kept in their fetch buffers for the
    // readers that come right after (a sequential reader's next READs): served from memory until
    // read to the end, or until newer ones push them out of the FIFO (then the page cache is
    // primed for them instead). Bounded by a count of chunks, inside the BufferBudget.
    private readonly ConcurrentDictionary<ChunkKey, MemoryChunk> _recent = new();
    private readonly ConcurrentQueue<MemoryChunk> _recentOrder = new();
    private readonly int _recentCapacity;
    private int _recentQueued;

    private long _accessClock;
    private long _usedBytes;
    private long _reservedBytes; // chunks past their quota check and not yet indexed
    private int _evictionScheduled;

    private long _hits;
    private long _misses;
    private long _fetches;
    private long _fetchBytes;
    private long _fetchFailures;
    private long _evictions;
    private long _evictedBytes;
    private long _pinnedSkips;
    private long _writeFailures;
    private long _directWrites;
    private long _inFlight;

    /// <summary>
    /// Opens the cache at <see cref="ChunkCacheOptions.RootDirectory"/>: takes its lock, deletes
    /// temp files left by a crash, and rebuilds the index from the chunk files (LRU order from
    /// their mtimes).
    /// </summary>
    /// <param name="options">Settings; validated here.</param>
    /// <param name="time">Clock for persisted access times; the system clock when null.</param>
    /// <param name="budget">A budget shared with other caches or the prefetcher; one of <see cref="ChunkCacheOptions.MemoryLimitBytes"/> when null.</param>
    public ChunkCache(ChunkCacheOptions options, TimeProvider? time = null, BufferBudget? budget = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _time = time ?? TimeProvider.System;
        Budget = budget ?? new BufferBudget(options.MemoryLimitBytes, options.ChunkSize);
        _highBytes = (long)(options.QuotaBytes * options.HighWatermark);
        _lowBytes = (long)(options.QuotaBytes * options.LowWatermark);
        _accessResolutionTicks = options.AccessTimeResolution.Ticks;
        _recentCapacity = options.RecentChunks >= 0 ? options.RecentChunks : (int)Math.Clamp(Budget.LimitBytes / options.ChunkSize / 8, 0, 32);
        _idle = new IdleHandles(IdleHandleBound(options.MaxIdleOpenFiles, CacheNative.OpenFileLimit()));
        _stripes = new Lock[StripeCount];
        for (int i = 0; i < _stripes.Length; i++)
        {
            _stripes[i] = new Lock();
        }
        _flights = new SingleFlight<ChunkKey, ChunkSource>(static (source, receivers) => source.HandOff(receivers));
        _blocks = ChunkBlocks.For(options.ChunkSize);

        _store = new ChunkStore(options.RootDirectory, options.ChunkSize);
        _lockFile = _store.Lock();
        bool durable = options.FlushToDisk && options.Medium == CacheMedium.Disk;
        try
        {
            _store.EnsureFormat();
            List<ScannedChunk> scanned = _store.Scan(out int deleted);
            DeletedAtStart = deleted;
            if (durable && SyncCheckpoint.ReadUnsafeSince(_store.Root) is long unsafeSince)
            {
                // The last owner crashed: an object file it wrote after its last checkpoint may
                // hold a torn chunk, so the whole file goes.
                var tornObjects = new HashSet<ObjectKey>();
                int torn = scanned.RemoveAll(chunk =>
                {
                    if (chunk.ModifiedUtcTicks < unsafeSince)
                    {
                        return false;
                    }
                    if (tornObjects.Add(chunk.Key.Object))
                    {
                        ChunkStore.TryDelete(_store.GetPath(chunk.Key.Object));
                    }
                    return true;
                });
                DiscardedUnsyncedAtStart = torn;
                if (torn > 0)
                {
                    // The deletions must be durable before a new marker vouches for what is left.
                    SyncCheckpoint.SyncFileSystem(_lockFile);
                }
            }
            // Oldest first, so the sequence numbers continue the LRU order of the last run.
            scanned.Sort(static (a, b) => a.ModifiedUtcTicks.CompareTo(b.ModifiedUtcTicks));
            _index = new ConcurrentDictionary<ChunkKey, ChunkEntry>(Environment.ProcessorCount, Math.Max(scanned.Count, 31));
            foreach (ScannedChunk chunk in scanned)
            {
                var entry = new ChunkEntry(chunk.Key, chunk.Length, _store.OffsetOf(chunk.Key.Index), chunk.ModifiedUtcTicks, _idle, _blocks, chunk.Present) { LastAccess = ++_accessClock };
                _index[chunk.Key] = entry;
                StateOf(chunk.Key.Object).Chunks++;
                _usedBytes += entry.PresentBytes;
            }
            LoadedAtStart = scanned.Count;
        }
        catch
        {
            _lockFile.Dispose();
            throw;
        }
        if (durable)
        {
            try
            {
                _sync = new SyncCheckpoint(_store.Root, _lockFile, _time, options.SyncInterval);
            }
            catch
            {
                _lockFile.Dispose();
                throw;
            }
        }
        // A smaller quota than last time: trim in the background like after any put.
        ScheduleEvictionIfNeeded();
    }

    /// <summary>The options the cache was opened with.</summary>
    public ChunkCacheOptions Options => _options;

    /// <summary>The budget fetch buffers come from; share it with read-ahead so one bound covers both.</summary>
    public BufferBudget Budget { get; }

    /// <summary>The full path of the root directory.</summary>
    public string RootDirectory => _store.Root;

    /// <summary>Chunks found at start.</summary>
    public int LoadedAtStart { get; }

    /// <summary>Unknown or unreadable files deleted at start.</summary>
    public int DeletedAtStart { get; }

    /// <summary>Chunks deleted at start (with their object files) because the last owner crashed before making them durable.</summary>
    public int DiscardedUnsyncedAtStart { get; }

    /// <summary>Batched syncs done so far (see <see cref="ChunkCacheOptions.SyncInterval"/>).</summary>
    public long SyncCheckpoints => _sync?.Checkpoints ?? 0;

    /// <summary>Tests: every chunk written so far is covered by a finished sync.</summary>
    internal bool AllSynced => _sync?.IsSettled ?? true;

    /// <summary>Makes every chunk written so far durable now, rather than at the next interval.</summary>
    public void Sync()
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        _sync?.Checkpoint();
    }

    /// <summary>Bytes per chunk.</summary>
    public int ChunkSize => _options.ChunkSize;

    /// <summary>Number of chunks of an object of <paramref name="objectSize"/> bytes (0 for an empty object: nothing to cache).</summary>
    public long GetChunkCount(long objectSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(objectSize);
        return (objectSize + ChunkSize - 1) / ChunkSize;
    }

    /// <summary>Length of chunk <paramref name="index"/> of an object of <paramref name="objectSize"/> bytes: ChunkSize, or less for the last.</summary>
    public int GetChunkLength(long objectSize, long index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, GetChunkCount(objectSize));
        return (int)Math.Min(ChunkSize, objectSize - (index * ChunkSize));
    }

    /// <summary>
    /// Returns a lease on the chunk: from the store when present, otherwise <paramref name="fetch"/>
    /// is called once for all concurrent callers of the same key, into a buffer of
    /// <paramref name="length"/> bytes from the <see cref="Budget"/> (callers wait for budget,
    /// never fail for lack of it); the chunk is written (temp name, fsync, rename) and every
    /// waiter is served. A fetch failure reaches every waiter of that flight and caches nothing.
    /// </summary>
    /// <param name="key">The chunk.</param>
    /// <param name="length">The chunk's length (<see cref="GetChunkLength"/>), 0..ChunkSize. A stored chunk of another length is treated as stale and refetched.</param>
    /// <param name="fetch">Fills the whole buffer with the chunk's bytes, or throws.</param>
    /// <param name="ct">Cancels this caller's wait; the fetch stops only when all its waiters have gone.</param>
    public ValueTask<ChunkLease> GetOrFetchAsync(ChunkKey key, int length, Func<Memory<byte>, CancellationToken, ValueTask> fetch, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(fetch);
        return GetOrFetchAsync(key, length, fetch, static (f, buffer, token) => f(buffer, token), ct);
    }

    /// <summary>The same, with a state argument so a hit allocates no closure.</summary>
    public ValueTask<ChunkLease> GetOrFetchAsync<TState>(
        ChunkKey key,
        int length,
        TState state,
        Func<TState, Memory<byte>, CancellationToken, ValueTask> fetch,
        CancellationToken ct)
    {
        ValidateFetch(key, length, fetch);

        if (TryLease(key, length, out ChunkLease? lease))
        {
            Interlocked.Increment(ref _hits);
            return ValueTask.FromResult(lease);
        }
        Interlocked.Increment(ref _misses);
        return FetchAsync(key, length, state, fetch, ct);
    }

    /// <summary>
    /// Reads [<paramref name="offsetInChunk"/>, +<c>destination.Length</c>) of a chunk; where the
    /// cache lacks some of it, fetches only the blocks that hold that range (not the whole chunk),
    /// serves the caller from the fetch buffer and stores them right after, in the background: a
    /// chunk stored in part. For random
    /// readers, who would otherwise fetch and write a whole chunk for every read, most of it
    /// never read. No single flight: two readers of one range at once both fetch it (the second
    /// store finds it there and writes nothing).
    /// </summary>
    /// <param name="key">The chunk.</param>
    /// <param name="length">The chunk's length (<see cref="GetChunkLength"/>).</param>
    /// <param name="offsetInChunk">Where the read starts in the chunk.</param>
    /// <param name="destination">Where the bytes go; the range must lie inside the chunk.</param>
    /// <param name="state">Passed to <paramref name="fetch"/>.</param>
    /// <param name="fetch">Fills the whole buffer with the chunk's bytes from the offset in the chunk it is given, or throws.</param>
    /// <param name="ct">Cancels the read and its fetch.</param>
    /// <returns>Bytes read: <c>destination.Length</c>.</returns>
    public async ValueTask<int> ReadRangeAsync<TState>(
        ChunkKey key,
        int length,
        long offsetInChunk,
        Memory<byte> destination,
        TState state,
        Func<TState, long, Memory<byte>, CancellationToken, ValueTask> fetch,
        CancellationToken ct)
    {
        ValidateFetch(key, length, fetch);
        ArgumentOutOfRangeException.ThrowIfNegative(offsetInChunk);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offsetInChunk + destination.Length, length, nameof(destination));

        if (TryReadStored(key, length, offsetInChunk, destination.Span))
        {
            return destination.Length;
        }
        if (key.Index == 0 || _flights.IsRunning(key))
        {
            // Chunk 0 is only ever stored whole: the scan at start takes an object file no longer
            // than one chunk for chunk 0 whole (no extent walk), so it must never hold holes. And
            // a chunk already on its way whole (a sequential reader's flight) is waited for, not
            // fetched in part a second time.
            using ChunkLease lease = await GetOrFetchAsync(key, length, (State: state, Fetch: fetch), static (s, buffer, token) => s.Fetch(s.State, 0, buffer, token), ct).ConfigureAwait(false);
            return lease.Read(offsetInChunk, destination.Span);
        }
        Interlocked.Increment(ref _misses);
        int block = _blocks.Size;
        long from = offsetInChunk / block * block;
        int count = (int)(Math.Min(length, (offsetInChunk + destination.Length + block - 1) / block * block) - from);

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _disposed.Token);
        BudgetLease buffer = await FetchIntoBufferAsync(
            count, (State: state, Fetch: fetch, From: from), static (s, into, token) => s.Fetch(s.State, s.From, into, token), linked.Token).ConfigureAwait(false);
        buffer.Memory.Span.Slice((int)(offsetInChunk - from), destination.Length).CopyTo(destination.Span);
        // The reader has its bytes: it goes now, and the range is stored behind it (the write
        // was half of a random read's time). The buffer stays out of the budget until then.
        ThreadPool.UnsafeQueueUserWorkItem(static s => s.Cache.StoreRange(s.Key, s.From, s.Length, s.Buffer), (Cache: this, Key: key, From: from, Length: length, Buffer: buffer), preferLocal: false);
        return destination.Length;
    }

    /// <summary>One origin fetch of <paramref name="length"/> bytes into a buffer from the budget, counted in the stats; the buffer is the caller's to dispose (here, on failure).</summary>
    private async ValueTask<BudgetLease> FetchIntoBufferAsync<TState>(int length, TState state, Func<TState, Memory<byte>, CancellationToken, ValueTask> fetch, CancellationToken token)
    {
        Interlocked.Increment(ref _fetches);
        Interlocked.Increment(ref _inFlight);
        BudgetLease buffer;
        try
        {
            buffer = await Budget.AcquireAsync(length, token).ConfigureAwait(false);
            try
            {
                await fetch(state, buffer.Memory[..length], token).ConfigureAwait(false);
            }
            catch
            {
                buffer.Dispose();
                throw;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Interlocked.Increment(ref _fetchFailures);
            throw;
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
        Interlocked.Add(ref _fetchBytes, length);
        return buffer;
    }

    /// <summary>Stores a fetched range (<see cref="ReadRangeAsync{TState}"/>), then returns its buffer to the budget.</summary>
    private void StoreRange(ChunkKey key, long from, int length, BudgetLease buffer)
    {
        using (buffer)
        {
            try
            {
                Store(key, from, length, buffer.Memory.Span, out _)?.Release();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Disk full or failing: the reader had its bytes; the range stays uncached.
                Interlocked.Increment(ref _writeFailures);
            }
            catch (ObjectDisposedException)
            {
                // Shut down meanwhile: the root is no longer ours.
            }
        }
    }

    /// <summary>Reads a range from a stored chunk of this length whose blocks hold it; false otherwise (nothing read).</summary>
    private bool TryReadStored(ChunkKey key, int length, long offsetInChunk, Span<byte> destination)
    {
        if (!TryPin(key, length, offsetInChunk, destination.Length, out ChunkEntry? entry))
        {
            return false;
        }
        try
        {
            Interlocked.Increment(ref _hits);
            if (!TryReadRecent(key, entry.Length, offsetInChunk, destination))
            {
                ChunkLease.ReadFile(entry.Handle!, entry.FileOffset + offsetInChunk, destination);
            }
            return true;
        }
        catch (IOException)
        {
            return false; // the file damaged behind the cache's back: fetch the range again
        }
        finally
        {
            entry.Release();
        }
    }

    /// <summary>A lease on a stored chunk, without fetching; false on a miss.</summary>
    public bool TryGetCached(ChunkKey key, [NotNullWhen(true)] out ChunkLease? lease)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        if (TryLease(key, expectedLength: -1, out lease))
        {
            Interlocked.Increment(ref _hits);
            return true;
        }
        // Not a miss in the stats: the caller follows up with GetOrFetchAsync, which counts it.
        return false;
    }

    /// <summary>
    /// Reads from a stored chunk without creating a lease (no allocation on a hit): the FUSE READ
    /// fast path. False on a miss, and then nothing is read.
    /// </summary>
    public bool TryRead(ChunkKey key, long offsetInChunk, Span<byte> destination, out int bytesRead)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        ArgumentOutOfRangeException.ThrowIfNegative(offsetInChunk);
        bytesRead = 0;
        if (!TryPin(key, expectedLength: -1, offsetInChunk, destination.Length, out ChunkEntry? entry))
        {
            // Not a miss in the stats (nor a chunk that lacks the blocks asked for): the caller
            // follows up with GetOrFetchAsync or ReadRangeAsync, which counts it.
            return false;
        }
        try
        {
            Interlocked.Increment(ref _hits);
            if (offsetInChunk < entry.Length)
            {
                int wanted = (int)Math.Min(destination.Length, entry.Length - offsetInChunk);
                bytesRead = TryReadRecent(key, entry.Length, offsetInChunk, destination[..wanted])
                    ? wanted
                    : ChunkLease.ReadFile(entry.Handle!, entry.FileOffset + offsetInChunk, destination[..wanted]);
            }
            return true;
        }
        finally
        {
            entry.Release();
        }
    }

    /// <summary>
    /// Asks the kernel to start reading a stored chunk into the page cache, for a reader that is
    /// about to reach it (sequential read-ahead over cached chunks): without it every chunk starts
    /// with a synchronous disk read. False on a miss (nothing is fetched).
    /// </summary>
    public bool Prime(ChunkKey key)
    {
        if (_recent.ContainsKey(key))
        {
            return true; // in memory already
        }
        if (_disposed.IsCancellationRequested || !TryPin(key, expectedLength: -1, out ChunkEntry? entry))
        {
            return false;
        }
        try
        {
            _ = CacheNative.WillNeed(entry.Handle!, entry.FileOffset, entry.Length); // advice: a failure costs only speed
            return true;
        }
        finally
        {
            entry.Release();
        }
    }

    /// <summary>Whether any chunk of the object is stored (a snapshot, like <see cref="Contains"/>); one lookup whatever the object's size.</summary>
    public bool ContainsAnyOf(ObjectKey obj) => _objects.ContainsKey(obj);

    /// <summary>Whether the chunk is stored (a snapshot: it may be evicted right after, unless leased).</summary>
    public bool Contains(ChunkKey key) => _index.TryGetValue(key, out ChunkEntry? entry) && entry.IsFull && !entry.IsRemoved;

    /// <summary>Whether a whole-chunk fetch of the chunk is under way (a snapshot).</summary>
    public bool IsFetching(ChunkKey key) => _flights.IsRunning(key);

    /// <summary>Whether the chunk's stored blocks hold [<paramref name="offsetInChunk"/>, +<paramref name="count"/>) (a snapshot, like <see cref="Contains"/>).</summary>
    public bool ContainsRange(ChunkKey key, long offsetInChunk, int count) =>
        _index.TryGetValue(key, out ChunkEntry? entry) && entry.Covers(offsetInChunk, count) && !entry.IsRemoved;

    /// <summary>
    /// Opens, read-only, the object's file when it holds every chunk of the object: then it is
    /// exactly the object, and can be a FUSE passthrough backing file. The caller owns the handle;
    /// the kernel takes its own reference when the handle is registered, and an eviction only
    /// unlinks the file (never changes it in place), so what the kernel reads stays right. False
    /// when any chunk is missing (nothing is fetched). Counts as an access of every chunk.
    /// </summary>
    public bool TryOpenWholeObject(ObjectKey obj, long objectSize, [NotNullWhen(true)] out SafeFileHandle? file)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        file = null;
        long count = GetChunkCount(objectSize);
        if (count == 0 || obj.Hash is null)
        {
            return false;
        }
        // A cheap look first, without the lock: most calls for a partly cached object end here.
        if (!_index.TryGetValue(new ChunkKey(obj, count - 1), out ChunkEntry? last) || last.Length != GetChunkLength(objectSize, count - 1) || !last.IsFull)
        {
            return false;
        }
        lock (StripeFor(obj))
        {
            // Under the object's lock no chunk of it is written or evicted, so "all indexed" and
            // the file opened below describe the same moment.
            for (long index = 0; index < count; index++)
            {
                if (!_index.TryGetValue(new ChunkKey(obj, index), out ChunkEntry? entry) || entry.IsRemoved || entry.Length != GetChunkLength(objectSize, index) || !entry.IsFull)
                {
                    return false;
                }
            }
            try
            {
                file = ChunkStore.OpenRead(_store.GetPath(obj));
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                return false;
            }
            if (RandomAccess.GetLength(file) != objectSize)
            {
                file.Dispose();
                file = null;
                return false;
            }
            // From now on the kernel may read this file for as long as it likes: its chunks are
            // never punched out, the object is only ever evicted whole (an unlink leaves the
            // kernel's inode, and every byte in it, as it is).
            StateOf(obj).OpenedWhole = true;
        }
        Interlocked.Increment(ref _hits);
        for (long index = 0; index < count; index++)
        {
            if (_index.TryGetValue(new ChunkKey(obj, index), out ChunkEntry? entry))
            {
                Volatile.Write(ref entry.LastAccess, Interlocked.Increment(ref _accessClock));
            }
        }
        return true;
    }

    /// <summary>
    /// Evicts now, on the caller's thread, down to the low watermark (after waiting for a
    /// background pass that is running). Eviction normally runs in the background once a put
    /// crosses the high watermark; this is for tools, shutdown and tests that need a settled cache.
    /// </summary>
    public void Trim()
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        EvictToLowWatermark();
    }

    /// <summary>A snapshot of the counters.</summary>
    public CacheStats GetStats()
    {
        long used = Volatile.Read(ref _usedBytes);
        return new CacheStats
        {
            UsedBytes = used,
            QuotaBytes = _options.QuotaBytes,
            ChunkCount = _index.Count,
            Hits = Volatile.Read(ref _hits),
            Misses = Volatile.Read(ref _misses),
            Fetches = Volatile.Read(ref _fetches),
            FetchBytes = Volatile.Read(ref _fetchBytes),
            FetchFailures = Volatile.Read(ref _fetchFailures),
            Evictions = Volatile.Read(ref _evictions),
            EvictedBytes = Volatile.Read(ref _evictedBytes),
            PinnedSkips = Volatile.Read(ref _pinnedSkips),
            WriteFailures = Volatile.Read(ref _writeFailures),
            DirectWrites = Volatile.Read(ref _directWrites),
            InFlightFetches = Volatile.Read(ref _inFlight),
            BufferBytesInUse = Budget.InUseBytes,
            OverQuota = used > _options.QuotaBytes,
            Medium = _options.Medium,
        };
    }

    /// <summary>
    /// Stops background eviction, cancels fetches in flight and releases the root's lock. Leases
    /// already handed out stay readable until disposed; the files stay for the next start.
    /// </summary>
    public void Dispose()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }
        _disposed.Cancel();
        lock (_evictionGate)
        {
            // Waits for a running eviction pass to finish its current file.
        }
        // Stores that started before the cancel finish first (or see it and leave the root alone).
        Stop(clean: true);
    }

    /// <summary>Tests: stops as a killed process would (no final sync, marker left as it is), releasing the root.</summary>
    internal void AbandonAsIfCrashed()
    {
        _disposed.Cancel();
        Stop(clean: false);
    }

    /// <summary>The end of both: the batched sync (marked clean, or left as a crash leaves it), fds, staging buffers, the root's lock.</summary>
    private void Stop(bool clean)
    {
        _sync?.Close(clean);
        _sync?.Dispose();
        while (_recentOrder.TryDequeue(out MemoryChunk? recent))
        {
            DropRecent(recent);
        }
        _idle.Clear();
        _store.Dispose();
        _lockFile.Dispose();
    }

    /// <summary>
    /// The idle fds to keep: the option, but at most half of what the fd limit leaves after 1,024
    /// for everything else (sockets, /dev/fuse, passthrough backing files), so a low limit
    /// costs reopens, never EMFILE.
    /// </summary>
    internal static int IdleHandleBound(int configured, long? openFileLimit) =>
        openFileLimit is long limit ? (int)Math.Min(configured, Math.Max(64, (limit - 1024) / 2)) : configured;

    /// <summary>The checks every fetching call makes before anything else: open, a fetch to call, a real key, a chunk's length.</summary>
    private void ValidateFetch(ChunkKey key, int length, Delegate fetch)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        ArgumentNullException.ThrowIfNull(fetch);
        ValidateKey(key);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, ChunkSize);
    }

    private static void ValidateKey(ChunkKey key)
    {
        if (!key.Object.IsValid)
        {
            throw new ArgumentException("The object key is not a hash from ObjectKey.From.", nameof(key));
        }
        ArgumentOutOfRangeException.ThrowIfNegative(key.Index, nameof(key));
    }

    private Lock StripeFor(ObjectKey obj) => _stripes[(obj.GetHashCode() & int.MaxValue) % StripeCount];

    private bool TryLease(ChunkKey key, int expectedLength, [NotNullWhen(true)] out ChunkLease? lease)
    {
        if (TryPin(key, expectedLength, out ChunkEntry? entry))
        {
            // Still in its fetch buffer: the lease reads memory, and holds the entry's pin too.
            lease = TryTakeRecent(key, entry.Length, out MemoryChunk? recent)
                ? new ChunkLease(new FreshChunk(entry, recent), _store)
                : new ChunkLease(entry, _store);
            return true;
        }
        lease = null;
        return false;
    }

    /// <summary>Takes a reference on a stored whole chunk and records the access; the hit path.</summary>
    private bool TryPin(ChunkKey key, int expectedLength, [NotNullWhen(true)] out ChunkEntry? entry) =>
        TryPin(key, expectedLength, 0, -1, out entry);

    /// <summary>
    /// Takes a reference on a stored chunk whose blocks hold [<paramref name="from"/>, +<paramref name="count"/>)
    /// (all of it when <paramref name="count"/> is negative) and records the access.
    /// </summary>
    private bool TryPin(ChunkKey key, int expectedLength, long from, int count, [NotNullWhen(true)] out ChunkEntry? entry)
    {
        if (key.Object.Hash is null || !_index.TryGetValue(key, out entry))
        {
            entry = null;
            return false;
        }
        if (expectedLength >= 0 && entry.Length != expectedLength)
        {
            // Same key, other length: a stale or damaged file. Miss; the fetch replaces it.
            entry = null;
            return false;
        }
        if (count < 0 ? !entry.IsFull : !entry.Covers(from, count))
        {
            // Some of the blocks asked for were never fetched (a random reader's chunk).
            entry = null;
            return false;
        }
        switch (entry.TryAcquire(_store))
        {
            case AcquireResult.Acquired:
                Touch(entry);
                return true;
            case AcquireResult.Missing:
                Forget(entry);
                break;
        }
        entry = null;
        return false;
    }

    private void Touch(ChunkEntry entry)
    {
        // One shared counter: exact LRU order at the cost of one interlocked add per hit, which
        // at tens of thousands of reads a second is noise next to the pread itself.
        Volatile.Write(ref entry.LastAccess, Interlocked.Increment(ref _accessClock));

        if (_time.GetUtcNow().UtcTicks - Volatile.Read(ref entry.PersistedAccessTicks) < _accessResolutionTicks)
        {
            return;
        }
        // Clock read to mtime set inside the checkpoint's gate, like a store: a refresh that read
        // the clock before a checkpoint must not land after it, or it would make a file that a
        // later store is writing look older than that checkpoint.
        _sync?.BeginWrite();
        try
        {
            long now = _time.GetUtcNow().UtcTicks;
            Volatile.Write(ref entry.PersistedAccessTicks, now);
            // The file's mtime is the access time that survives a restart (atime is unreliable
            // under relatime/noatime); refreshed at most once per resolution.
            File.SetLastWriteTimeUtc(entry.Handle!, new DateTime(now, DateTimeKind.Utc));
            _sync?.NoteTouched();
        }
        catch (IOException)
        {
            // Only the post-restart order suffers.
        }
        catch (UnauthorizedAccessException)
        {
        }
        finally
        {
            _sync?.EndWrite();
        }
    }

    /// <summary>Drops an entry whose file vanished.</summary>
    private void Forget(ChunkEntry entry)
    {
        lock (StripeFor(entry.Key.Object))
        {
            Unindex(entry);
        }
    }

    private async ValueTask<ChunkLease> FetchAsync<TState>(
        ChunkKey key,
        int length,
        TState state,
        Func<TState, Memory<byte>, CancellationToken, ValueTask> fetch,
        CancellationToken ct)
    {
        ChunkSource source = await _flights.RunAsync(
            key,
            new FetchRequest<TState>(this, length, state, fetch),
            static (k, request, token) => request.Cache.FillAsync(k, request, token),
            ct).ConfigureAwait(false);

        // The flight handed us one reference on the source.
        return source switch
        {
            ChunkEntry entry => new ChunkLease(entry, _store),
            MemoryChunk memory => new ChunkLease(memory),
            FreshChunk fresh => new ChunkLease(fresh, _store),
            _ => throw new InvalidOperationException("Unknown chunk source."),
        };
    }

    /// <summary>The work of one flight: fetch into a budgeted buffer, store, index. Returns the source with one reference.</summary>
    private async ValueTask<ChunkSource> FillAsync<TState>(ChunkKey key, FetchRequest<TState> request, CancellationToken flightToken)
    {
        // A flight that every caller abandoned may have stored the chunk after this flight's
        // callers missed: serve that rather than fetch again.
        if (TryPin(key, request.Length, out ChunkEntry? existing))
        {
            return existing;
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(flightToken, _disposed.Token);
        BudgetLease buffer = await FetchIntoBufferAsync(request.Length, request.State, request.Fetch, linked.Token).ConfigureAwait(false);

        ChunkEntry stored;
        try
        {
            stored = Store(key, 0, request.Length, buffer.Memory.Span, out bool direct)!;
            if (direct)
            {
                // Written around the page cache: this flight's readers read the buffer (it returns
                // to the budget with their last lease). The readers that come right after (the
                // rest of a 1 MiB random read, the next READs of a sequential one) read it from
                // the buffer too while it is among the recent ones; when it is not, or once it
                // leaves them unread, the kernel reads the file back into the page cache (a DMA,
                // not a copy on our cores).
                var memory = new MemoryChunk(key, buffer);
                if (!Retain(memory))
                {
                    _ = CacheNative.WillNeed(stored.Handle!, stored.FileOffset, stored.Length);
                }
                return new FreshChunk(stored, memory);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Disk full or failing: the readers still get their bytes, from memory, and the
            // buffer goes back to the budget when the last of them lets go.
            Interlocked.Increment(ref _writeFailures);
            return new MemoryChunk(key, buffer);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
        buffer.Dispose();
        return stored;
    }

    /// <summary>
    /// Copies from a recently fetched chunk's buffer, for a reader that holds the chunk's entry pinned
    /// (so the index still vouches for it); false when it is not in memory. A chunk read to its
    /// end leaves memory: a sequential reader has passed it.
    /// </summary>
    private bool TryReadRecent(ChunkKey key, int length, long offsetInChunk, Span<byte> destination)
    {
        if (!TryTakeRecent(key, length, out MemoryChunk? recent))
        {
            return false;
        }
        try
        {
            recent.Data.Span.Slice((int)offsetInChunk, destination.Length).CopyTo(destination);
            if (recent.Consume(destination.Length) >= recent.Length)
            {
                DropRecent(recent);
            }
            return true;
        }
        finally
        {
            recent.Release();
        }
    }

    /// <summary>
    /// A reference on a recently fetched chunk still in memory, of the entry's length; false when
    /// there is none (a buffer of another length is never referenced, so never leaked).
    /// </summary>
    private bool TryTakeRecent(ChunkKey key, int length, [NotNullWhen(true)] out MemoryChunk? chunk)
    {
        if (_recentCapacity > 0 && _recent.TryGetValue(key, out chunk) && chunk.Length == length && chunk.TryAddRef())
        {
            return true;
        }
        chunk = null;
        return false;
    }

    /// <summary>Takes this chunk (not a newer one of its key) out of the recent ones and drops the reference they held; false when it had left already.</summary>
    private bool DropRecent(MemoryChunk chunk)
    {
        if (!_recent.TryRemove(new KeyValuePair<ChunkKey, MemoryChunk>(chunk.Key, chunk)))
        {
            return false;
        }
        chunk.Release();
        return true;
    }

    /// <summary>
    /// Keeps a freshly written chunk's buffer for the readers right behind its flight (one more
    /// reference), pushing the oldest recent chunk out when the FIFO is full. False when retention
    /// is off (a budget too small to spare the room).
    /// </summary>
    private bool Retain(MemoryChunk chunk)
    {
        if (_recentCapacity == 0 || !chunk.TryAddRef())
        {
            return false;
        }
        if (_recent.TryRemove(chunk.Key, out MemoryChunk? older))
        {
            older.Release();
        }
        _recent[chunk.Key] = chunk;
        _recentOrder.Enqueue(chunk);
        if (Interlocked.Increment(ref _recentQueued) > _recentCapacity && _recentOrder.TryDequeue(out MemoryChunk? oldest))
        {
            Interlocked.Decrement(ref _recentQueued);
            if (DropRecent(oldest) && !oldest.WasRead)
            {
                // Pushed out before anyone read it (read-ahead that ran far ahead of its reader):
                // prime the page cache for the reader on its way. A chunk read in part was a
                // random reader's, who has what it came for: reading the rest back from disk
                // would be a read nobody asked for (it cost 7 % of the CPU of cold random reads).
                // Not an access, and no pin (an eviction pass must not find it pinned): a file
                // descriptor of its own, for the advice only.
                PrimeUnpinned(oldest.Key, oldest.Length);
            }
        }
        return true;
    }

    /// <summary>Starts reading a chunk's range of its object file into the page cache, through a descriptor of its own; best effort.</summary>
    private void PrimeUnpinned(ChunkKey key, int length)
    {
        try
        {
            using SafeFileHandle file = ChunkStore.OpenRead(_store.GetPath(key.Object));
            _ = CacheNative.WillNeed(file, _store.OffsetOf(key.Index), length);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Evicted meanwhile, or unreadable: a later reader reads it from disk, or fetches it again.
        }
    }

    /// <summary>
    /// Writes <paramref name="data"/>, the chunk's bytes from <paramref name="offsetInChunk"/> (the
    /// whole chunk, or a range of blocks), into its object's file and indexes it, pinned once for
    /// the caller. Null when a range adds nothing to what is stored (then nothing is written).
    /// </summary>
    private ChunkEntry? Store(ChunkKey key, long offsetInChunk, int chunkLength, ReadOnlySpan<byte> data, out bool direct)
    {
        // The checkpoint gate spans clock read to index (see SyncCheckpoint).
        _sync?.BeginWrite();
        try
        {
            return StoreUnderGate(key, offsetInChunk, chunkLength, data, out direct);
        }
        finally
        {
            _sync?.EndWrite();
        }
    }

    private ChunkEntry? StoreUnderGate(ChunkKey key, long offsetInChunk, int chunkLength, ReadOnlySpan<byte> data, out bool direct)
    {
        // Make room first, on this thread, if this put would take the cache past the quota
        // itself; crossing only the high watermark is left to the background pass. Stores run
        // concurrently (read-ahead workers, readers), so each one reserves its bytes before it
        // looks: two stores can no longer both see room for one. No object lock is held here:
        // eviction takes them.
        long reserved = Interlocked.Add(ref _reservedBytes, data.Length);
        bool indexed = false;
        try
        {
            if (Volatile.Read(ref _usedBytes) + reserved > _options.QuotaBytes)
            {
                EvictToLowWatermark();
            }
            ChunkEntry? entry = WriteAndIndex(key, offsetInChunk, chunkLength, data, out direct);
            indexed = true;
            ScheduleEvictionIfNeeded();
            return entry;
        }
        finally
        {
            if (!indexed)
            {
                Interlocked.Add(ref _reservedBytes, -data.Length);
            }
        }
    }

    /// <summary>
    /// Writes the chunk in place and indexes it under its object's lock; its reservation becomes
    /// used bytes. The write itself is inside the lock: an eviction of the object unlinks its
    /// file, and a chunk written into the unlinked file and then indexed would be lost (or,
    /// worse, read back from a newer file that has a hole there).
    /// </summary>
    private ChunkEntry? WriteAndIndex(ChunkKey key, long offsetInChunk, int chunkLength, ReadOnlySpan<byte> data, out bool direct)
    {
        lock (StripeFor(key.Object))
        {
            // Once disposed, the root may already belong to a new instance: leave it alone.
            ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
            bool whole = offsetInChunk == 0 && data.Length == chunkLength;
            _index.TryGetValue(key, out ChunkEntry? old);
            // The blocks an entry of this length already vouches for stay; a stale copy (other
            // length) vouches for none.
            ulong kept = old is not null && old.Length == chunkLength && !old.IsRemoved ? old.Present : 0;
            ulong present = kept | (whole ? _blocks.All(chunkLength) : _blocks.Within(offsetInChunk, data.Length, chunkLength));
            if (!whole && present == kept)
            {
                // A range already stored (a concurrent fetch of it, or of the whole chunk, won).
                Interlocked.Add(ref _reservedBytes, -data.Length);
                direct = false;
                return null;
            }
            DateTimeOffset now = _time.GetUtcNow();
            bool tryDirect = _options.Medium == CacheMedium.Disk && _options.DirectWriteMinBytes > 0 && data.Length >= _options.DirectWriteMinBytes;
            direct = _store.WriteRange(key, offsetInChunk, data, chunkLength, now.UtcDateTime, tryDirect);
            if (direct)
            {
                Interlocked.Increment(ref _directWrites);
            }
            SafeFileHandle handle = ChunkStore.OpenRead(_store.GetPath(key.Object));
            var entry = new ChunkEntry(key, chunkLength, _store.OffsetOf(key.Index), now.UtcTicks, _idle, _blocks, present);
            entry.InitializePinned(handle);
            entry.LastAccess = Interlocked.Increment(ref _accessClock);
            if (old is not null)
            {
                // Written over a stale copy (other length, or a duplicate from an abandoned
                // flight), or adding blocks to a partial one: the old entry no longer counts, and
                // its leases read the new bytes from here on.
                old.MarkRemoved();
                Interlocked.Add(ref _usedBytes, -old.PresentBytes);
            }
            else
            {
                StateOf(key.Object).Chunks++;
            }
            _index[key] = entry;
            Interlocked.Add(ref _usedBytes, entry.PresentBytes);
            Interlocked.Add(ref _reservedBytes, -data.Length);
            return entry;
        }
    }

    private void ScheduleEvictionIfNeeded()
    {
        if (Volatile.Read(ref _usedBytes) > _highBytes
            && !_disposed.IsCancellationRequested
            && Interlocked.CompareExchange(ref _evictionScheduled, 1, 0) == 0)
        {
            // Dispose waits for a running pass through _evictionGate, so the task need not be kept.
            _ = Task.Run(() =>
            {
                // Cleared before the pass, so puts during the pass schedule another.
                Volatile.Write(ref _evictionScheduled, 0);
                EvictToLowWatermark();
            });
        }
    }

    /// <summary>
    /// Evicts unpinned chunks, least recently used first, until used bytes are at or below the
    /// low watermark: a chunk's range is punched out of its object's file, and the file unlinked
    /// with its last chunk. An object that was ever opened whole (<see cref="TryOpenWholeObject"/>)
    /// goes whole instead, by unlink only: the kernel may be reading it as a passthrough backing
    /// file, and an unlinked inode keeps its bytes where a punched range would read as zeros. Pinned
    /// chunks are skipped; when everything left is pinned the cache stays over (reported in
    /// <see cref="CacheStats.OverQuota"/>) rather than fail a read.
    /// </summary>
    private void EvictToLowWatermark()
    {
        lock (_evictionGate)
        {
            if (_disposed.IsCancellationRequested || Volatile.Read(ref _usedBytes) + Volatile.Read(ref _reservedBytes) <= _lowBytes)
            {
                return;
            }

            // Exact LRU by sorting a snapshot of the unpinned entries on their access sequence:
            // O(n log n) per pass, but a pass frees (high - low) of the quota, so it runs
            // rarely; in exchange the hit path is one interlocked add, with no list to lock.
            var candidates = new List<(long Access, ChunkEntry Entry)>(_index.Count);
            foreach (KeyValuePair<ChunkKey, ChunkEntry> pair in _index)
            {
                if (pair.Value.IsPinned)
                {
                    Interlocked.Increment(ref _pinnedSkips);
                    continue;
                }
                candidates.Add((Volatile.Read(ref pair.Value.LastAccess), pair.Value));
            }
            candidates.Sort(static (a, b) => a.Access.CompareTo(b.Access));

            foreach ((long _, ChunkEntry entry) in candidates)
            {
                if (Volatile.Read(ref _usedBytes) + Volatile.Read(ref _reservedBytes) <= _lowBytes || _disposed.IsCancellationRequested)
                {
                    break;
                }
                lock (StripeFor(entry.Key.Object))
                {
                    if (_objects.TryGetValue(entry.Key.Object, out ObjectState? state) && state.OpenedWhole)
                    {
                        EvictWholeObject(entry.Key.Object);
                    }
                    else
                    {
                        EvictChunk(entry);
                    }
                }
            }
        }
    }

    /// <summary>Punches one chunk out of its object's file, or unlinks the file with its last chunk. Under the object's lock.</summary>
    private void EvictChunk(ChunkEntry entry)
    {
        if (!entry.TryMarkEvicted())
        {
            // Leased since the snapshot, or replaced: skip it.
            Interlocked.Increment(ref _pinnedSkips);
            return;
        }
        UnindexEvicted(entry);
        if (!_objects.ContainsKey(entry.Key.Object))
        {
            ChunkStore.TryDelete(_store.GetPath(entry.Key.Object));
        }
        else
        {
            // Nobody reads this range any more: the entry is marked evicted, so no new lease can
            // reach it, and a write of it again waits for this lock.
            _store.TryPunch(entry.Key, entry.Length);
        }
    }

    /// <summary>Drops every chunk of an object opened whole and unlinks its file, unless a chunk is pinned. Under the object's lock.</summary>
    private void EvictWholeObject(ObjectKey obj)
    {
        // Chunks lie inside the file, so the file's length bounds their indexes.
        long fileLength = _store.GetFileLength(obj);
        long lastIndex = fileLength <= 0 ? 0 : (fileLength - 1) / ChunkSize;
        var entries = new List<ChunkEntry>();
        for (long index = 0; index <= lastIndex; index++)
        {
            if (_index.TryGetValue(new ChunkKey(obj, index), out ChunkEntry? entry))
            {
                if (entry.IsPinned)
                {
                    Interlocked.Increment(ref _pinnedSkips);
                    return;
                }
                entries.Add(entry);
            }
        }
        foreach (ChunkEntry entry in entries)
        {
            // A lease taken in the meantime keeps reading the unlinked inode; the chunk is gone
            // from the index either way.
            if (!entry.TryMarkEvicted())
            {
                entry.MarkRemoved();
            }
            UnindexEvicted(entry);
        }
        _objects.TryRemove(obj, out _);
        ChunkStore.TryDelete(_store.GetPath(obj));
    }

    /// <summary>Removes an entry from the index and its object's count (the object's state goes with its last chunk). Under the object's lock.</summary>
    private bool Unindex(ChunkEntry entry)
    {
        if (!_index.TryRemove(new KeyValuePair<ChunkKey, ChunkEntry>(entry.Key, entry)))
        {
            return false;
        }
        Interlocked.Add(ref _usedBytes, -entry.PresentBytes);
        if (_recent.TryRemove(entry.Key, out MemoryChunk? recent))
        {
            recent.Release(); // out of the index, out of memory: its FIFO slot frees itself
        }
        if (_objects.TryGetValue(entry.Key.Object, out ObjectState? state) && --state.Chunks <= 0)
        {
            _objects.TryRemove(entry.Key.Object, out _);
        }
        return true;
    }

    /// <summary><see cref="Unindex"/>, counted as an eviction.</summary>
    private void UnindexEvicted(ChunkEntry entry)
    {
        if (Unindex(entry))
        {
            Interlocked.Increment(ref _evictions);
            Interlocked.Add(ref _evictedBytes, entry.PresentBytes);
        }
    }

    /// <summary>The object's bookkeeping, created with its first chunk. Under the object's lock (or at start).</summary>
    private ObjectState StateOf(ObjectKey obj) => _objects.GetOrAdd(obj, static _ => new ObjectState());

    /// <summary>An object's bookkeeping; read and written under its stripe lock.</summary>
    private sealed class ObjectState
    {
        public int Chunks;
        public bool OpenedWhole;
    }

    private sealed record FetchRequest<TState>(
        ChunkCache Cache,
        int Length,
        TState State,
        Func<TState, Memory<byte>, CancellationToken, ValueTask> Fetch);
}
