using CsiCache.Cache;
using CsiCache.Fuse;
using CsiCache.Origins;
using Microsoft.Extensions.Logging;

namespace CsiCache.Datasets;

/// <summary>
/// The read path of one mount: a FUSE READ's (offset, size) becomes chunk reads from the cache,
/// missing chunks are fetched from the origin (one fetch per chunk however many readers want it:
/// the cache's single flight), and sequential readers get the next chunks fetched ahead.
/// </summary>
/// <remarks>
/// The hit path is synchronous and allocation-free: <see cref="ChunkCache.TryRead"/> preads straight
/// into the kernel's reply buffer and the result is a completed <see cref="ValueTask{T}"/>. Only a
/// miss goes async. Every failure is turned into an errno here, so a READ is always answered.
/// </remarks>
internal sealed partial class ChunkReader
{
    private readonly ChunkCache _cache;
    private readonly IOrigin _origin;
    private readonly MountCounters _counters;
    private readonly Prefetcher? _prefetcher;
    private readonly int _maxReadAheadChunks;
    private readonly CancellationToken _mountToken;
    private readonly ILogger _logger;

    public ChunkReader(ChunkCache cache, IOrigin origin, MountCounters counters, Prefetcher? prefetcher, int maxReadAheadChunks, ILogger logger, CancellationToken mountToken)
    {
        _cache = cache;
        _origin = origin;
        _counters = counters;
        _prefetcher = prefetcher;
        _maxReadAheadChunks = maxReadAheadChunks;
        _logger = logger;
        _mountToken = mountToken;
    }

    public ChunkCache Cache => _cache;

    public int ChunkSize => _cache.ChunkSize;

    /// <summary>Reads up to <c>destination.Length</c> bytes at <paramref name="offset"/>; fewer only at end of file.</summary>
    public ValueTask<FuseReadResult> ReadAsync(OpenFile file, long offset, Memory<byte> destination, CancellationToken ct)
    {
        long size = file.Version.Object.Size;
        if (offset >= size || destination.Length == 0)
        {
            return new ValueTask<FuseReadResult>(FuseReadResult.Bytes(0));
        }
        int want = (int)Math.Min(destination.Length, size - offset);
        int chunkSize = _cache.ChunkSize;
        ObjectKey key = file.Version.Key;

        bool random = ScheduleReadAhead(file, offset, want);

        // The hit path: every chunk the read touches is in the cache.
        int done = 0;
        try
        {
            while (done < want)
            {
                var (index, inChunk, part) = Locate(offset + done, want - done, chunkSize);
                if (!_cache.TryRead(new ChunkKey(key, index), inChunk, destination.Span.Slice(done, part), out int n) || n != part)
                {
                    // A miss, or a stored chunk shorter than this version's (stale): the slow path refetches.
                    break;
                }
                _counters.Hit();
                done += part;
            }
        }
        catch (IOException)
        {
            // A chunk file damaged behind the cache's back: fetch it again on the slow path.
        }
        catch (ObjectDisposedException)
        {
            return new ValueTask<FuseReadResult>(Errno.EIO); // the host is shutting down
        }

        if (done == want)
        {
            _counters.Served(want);
            return new ValueTask<FuseReadResult>(FuseReadResult.Bytes(want));
        }
        return ReadMissingAsync(file, offset, destination, done, want, random, ct);
    }

    /// <summary>
    /// The version an open (or a first READ) will read. Where the origin must be asked for it (an
    /// HTTP listing carries no version) and the file fits in one chunk, the same request brings
    /// the whole file, which goes into the cache: a small file then costs one origin round trip,
    /// not a HEAD and a GET.
    /// </summary>
    public async ValueTask<FileVersion> ResolveForReadAsync(DatasetTree tree, DatasetEntry file, CancellationToken ct)
    {
        long listedSize = file.Attributes.Size;
        // A first resolve in flight is storing the file's bytes (its version may already be set):
        // every other read waits for it below, or it would miss the chunk and fetch it again.
        Task<FileVersion>? running = Volatile.Read(ref file.FirstResolve);
        if (running is null)
        {
            if (!DatasetTree.NeedsStatToOpen(file) || listedSize == 0 || listedSize > _cache.ChunkSize)
            {
                // Known already; or listed empty (nothing to read with it); or larger than a chunk,
                // where the first chunk may not be what the reader wants (a random reader of a shard)
                // and one extra round trip is small next to the file: a plain stat.
                return await tree.ResolveFileAsync(file, ct).ConfigureAwait(false);
            }
            var mine = new TaskCompletionSource<FileVersion>(TaskCreationOptions.RunContinuationsAsynchronously);
            running = Interlocked.CompareExchange(ref file.FirstResolve, mine.Task, null);
            if (running is null)
            {
                try
                {
                    mine.SetResult(await ResolveWithFirstChunkAsync(tree, file, ct).ConfigureAwait(false));
                }
                catch (Exception e)
                {
                    mine.SetException(e);
                }
                finally
                {
                    // Done either way: a success set file.Version, a failure lets the next open try again.
                    Volatile.Write(ref file.FirstResolve, null);
                }
                return await mine.Task.ConfigureAwait(false);
            }
        }
        // Another open is asking the origin right now: share its answer (and its first chunk).
        return await running.WaitAsync(ct).ConfigureAwait(false);
    }

    private async Task<FileVersion> ResolveWithFirstChunkAsync(DatasetTree tree, DatasetEntry file, CancellationToken ct)
    {
        long listed = file.Attributes.Size;
        int want = listed > 0 ? (int)Math.Min(listed, _cache.ChunkSize) : _cache.ChunkSize;
        using BudgetLease buffer = await _cache.Budget.AcquireAsync(want, ct).ConfigureAwait(false);
        (FileVersion version, int read) = await tree.ResolveFileWithFirstBytesAsync(file, buffer.Memory[..want], ct).ConfigureAwait(false);
        long size = version.Object.Size;
        if (size > 0)
        {
            int length = _cache.GetChunkLength(size, 0);
            if (read == length)
            {
                // Already here: the cache's fetch just copies it (a reader racing us joins this flight).
                using ChunkLease lease = await _cache.GetOrFetchAsync(
                    new ChunkKey(version.Key, 0), length, buffer.Memory[..length], static (bytes, into, _) =>
                    {
                        bytes.CopyTo(into);
                        return ValueTask.CompletedTask;
                    }, ct).ConfigureAwait(false);
            }
        }
        return version;
    }

    /// <summary>Sync flavour for FUSE reader threads.</summary>
    public FileVersion ResolveForRead(DatasetTree tree, DatasetEntry file, CancellationToken ct) =>
        DatasetTree.WaitForOrigin(ResolveForReadAsync(tree, file, ct));

    /// <summary>Fetches one chunk into the cache unless it is there (read-ahead and dataset prefetch).</summary>
    public async Task PrefetchAsync(FileVersion file, long index, CancellationToken ct)
    {
        var key = new ChunkKey(file.Key, index);
        if (_cache.Contains(key))
        {
            return;
        }
        int length = _cache.GetChunkLength(file.Object.Size, index);
        using ChunkLease lease = await _cache.GetOrFetchAsync(key, length, new FetchState(_origin, file.Object, index * _cache.ChunkSize), FetchState.Fetch, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Fetches a small file (at most one chunk) into the cache unless it is there, resolving its
    /// version as a first open would: from the listing, or with the one GET that also brings its bytes.
    /// </summary>
    public async Task PrefetchSmallFileAsync(DatasetTree tree, DatasetEntry file, CancellationToken ct)
    {
        FileVersion version = await ResolveForReadAsync(tree, file, ct).ConfigureAwait(false);
        if (version.Object.Size > 0)
        {
            await PrefetchAsync(version, 0, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Queues a small file for bulk prefetch (directory read-ahead; waits for room in the pool's queue).</summary>
    public async Task QueueSmallFileAsync(DatasetTree tree, DatasetEntry file, CancellationToken ct)
    {
        if (_prefetcher is not null)
        {
            await _prefetcher.QueueBulkAsync(new PrefetchItem(this, null, 0, _mountToken, tree, file), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Queues every chunk of a file for bulk prefetch (waits for room in the pool's queue).</summary>
    public async Task QueueWholeFileAsync(FileVersion file, CancellationToken ct)
    {
        if (_prefetcher is null)
        {
            return;
        }
        long chunks = _cache.GetChunkCount(file.Object.Size);
        for (long i = 0; i < chunks; i++)
        {
            if (!_cache.Contains(new ChunkKey(file.Key, i)))
            {
                await _prefetcher.QueueBulkAsync(new PrefetchItem(this, file, i, _mountToken), ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Bytes of <paramref name="file"/> that are in the cache now.</summary>
    public long CachedBytes(FileVersion file)
    {
        long total = 0;
        long chunks = _cache.GetChunkCount(file.Object.Size);
        for (long i = 0; i < chunks; i++)
        {
            if (_cache.Contains(new ChunkKey(file.Key, i)))
            {
                total += _cache.GetChunkLength(file.Object.Size, i);
            }
        }
        return total;
    }

    /// <summary>Records the read in the file's window and starts read-ahead; returns whether the read looks random.</summary>
    private bool ScheduleReadAhead(OpenFile file, long offset, int length)
    {
        long chunkCount = _cache.GetChunkCount(file.Version.Object.Size);
        int maxWindow = _prefetcher is null ? 0 : Math.Max(0, _maxReadAheadChunks);
        (long from, long to) = file.ReadAhead.OnRead(offset, length, _cache.ChunkSize, chunkCount, maxWindow, out bool random);
        for (long i = from; i < to; i++)
        {
            // A cached chunk ahead is read into the page cache now; a missing one is fetched.
            if (!_cache.Prime(new ChunkKey(file.Version.Key, i)))
            {
                _prefetcher!.TryQueueReadAhead(new PrefetchItem(this, file.Version, i, _mountToken));
            }
        }
        return random;
    }

    /// <summary>
    /// A read that spans more than one missing chunk (an unaligned random read spans two): the
    /// later chunks are queued now, so they arrive alongside the first instead of after it; the
    /// read joins their flights when it gets to them.
    /// </summary>
    private void FetchLaterChunksAhead(OpenFile file, long position, int length)
    {
        if (_prefetcher is null)
        {
            return;
        }
        long first = position / _cache.ChunkSize;
        long last = (position + length - 1) / _cache.ChunkSize;
        for (long i = first + 1; i <= last; i++)
        {
            if (!_cache.Contains(new ChunkKey(file.Version.Key, i)))
            {
                _prefetcher.TryQueueReadAhead(new PrefetchItem(this, file.Version, i, _mountToken));
            }
        }
    }

    /// <summary>Where a byte position falls: its chunk, the offset inside it, and how much of <paramref name="remaining"/> that chunk holds.</summary>
    private static (long Index, long InChunk, int Part) Locate(long position, int remaining, int chunkSize)
    {
        long index = position / chunkSize;
        long inChunk = position - (index * chunkSize);
        return (index, inChunk, (int)Math.Min(remaining, chunkSize - inChunk));
    }

    /// <summary>
    /// Whether a read's missing chunks are fetched in ranges (only the blocks it needs) rather
    /// than whole: when the read looks random (<see cref="ReadAheadWindow.OnRead(long, int, int, long, int, out bool)"/>:
    /// a jump, or what follows one until a sequential run is long enough), it starts inside a
    /// chunk, it is at most half a chunk, and it stops short of the file's end (a small file is
    /// read whole). A random 1 MiB read of a shard then fetches about 1 MiB, not the one or two
    /// whole chunks around it; a reader that starts at 0 and reads on gets whole chunks, one GET
    /// each, and read-ahead once its run is long enough.
    /// </summary>
    private bool ReadsInRanges(OpenFile file, long offset, int count, bool random) =>
        random && offset % _cache.ChunkSize != 0 && count <= _cache.ChunkSize / 2 && count < file.Version.Object.Size - offset;

    private async ValueTask<FuseReadResult> ReadMissingAsync(OpenFile file, long offset, Memory<byte> destination, int done, int want, bool random, CancellationToken ct)
    {
        int chunkSize = _cache.ChunkSize;
        OriginObject obj = file.Version.Object;
        bool ranges = ReadsInRanges(file, offset, want - done, random);
        if (!ranges)
        {
            FetchLaterChunksAhead(file, offset + done, want - done);
        }
        try
        {
            if (ranges)
            {
                await ReadRangesAsync(file, offset + done, destination.Slice(done, want - done), ct).ConfigureAwait(false);
                done = want;
            }
            while (done < want)
            {
                var (index, inChunk, part) = Locate(offset + done, want - done, chunkSize);
                int length = _cache.GetChunkLength(obj.Size, index);
                ValueTask<ChunkLease> pending = _cache.GetOrFetchAsync(
                    new ChunkKey(file.Version.Key, index), length, new FetchState(_origin, obj, index * chunkSize), FetchState.Fetch, ct);
                if (pending.IsCompletedSuccessfully)
                {
                    _counters.Hit();
                }
                else
                {
                    _counters.Miss();
                }
                using (ChunkLease lease = await pending.ConfigureAwait(false))
                {
                    int n = lease.Read(inChunk, destination.Span.Slice(done, part));
                    if (n != part)
                    {
                        throw new IOException($"chunk {index} of '{obj.Path}' holds {lease.Length} bytes, expected {length}");
                    }
                }
                done += part;
            }
            _counters.Served(want);
            return FuseReadResult.Bytes(want);
        }
        catch (Exception e)
        {
            Errno errno = ErrnoMap.From(e);
            if (ErrnoMap.IsExpected(e))
            {
                LogReadFailed(_logger, obj.Path, offset, errno.ToString(), e.Message);
            }
            else
            {
                LogReadFailedUnexpectedly(_logger, obj.Path, offset, errno.ToString(), e);
            }
            return errno;
        }
    }

    /// <summary>
    /// Fills <paramref name="destination"/> from <paramref name="position"/> chunk by chunk, from
    /// the cache where its blocks hold the part, else by a ranged fetch of just that part; the
    /// parts' fetches run at once (an unaligned read spans two chunks).
    /// </summary>
    private async ValueTask ReadRangesAsync(OpenFile file, long position, Memory<byte> destination, CancellationToken ct)
    {
        int chunkSize = _cache.ChunkSize;
        OriginObject obj = file.Version.Object;
        Task? pending = null;
        List<Task>? more = null;
        int done = 0;
        while (done < destination.Length)
        {
            var (index, inChunk, part) = Locate(position + done, destination.Length - done, chunkSize);
            var key = new ChunkKey(file.Version.Key, index);
            // A part whose blocks are stored completes at once (the cache reads it first).
            ValueTask<int> read = _cache.ReadRangeAsync(
                key, _cache.GetChunkLength(obj.Size, index), inChunk, destination.Slice(done, part), new FetchState(_origin, obj, index * chunkSize), FetchState.FetchRange, ct);
            if (read.IsCompletedSuccessfully)
            {
                _counters.Hit();
            }
            else
            {
                _counters.Miss();
                if (index > 0 && !_cache.IsFetching(key))
                {
                    // A range fetch, not a wait for a whole chunk on its way (chunk 0 is always
                    // whole): a random reader, whose next opens are better off direct.
                    file.Entry.RandomReads = true;
                }
                Task fetch = read.AsTask();
                if (pending is null)
                {
                    pending = fetch;
                }
                else
                {
                    (more ??= [pending]).Add(fetch);
                }
            }
            done += part;
        }
        if (more is not null)
        {
            await Task.WhenAll(more).ConfigureAwait(false);
        }
        else if (pending is not null)
        {
            await pending.ConfigureAwait(false);
        }
    }

    /// <summary>What a chunk fetch needs, passed as state so a cache hit allocates no closure.</summary>
    private readonly record struct FetchState(IOrigin Origin, OriginObject Object, long Offset)
    {
        public static readonly Func<FetchState, Memory<byte>, CancellationToken, ValueTask> Fetch = static (s, buffer, ct) => s.FetchAsync(buffer, ct);

        /// <summary>A range of the chunk that starts at <see cref="Offset"/>: from the given offset in it.</summary>
        public static readonly Func<FetchState, long, Memory<byte>, CancellationToken, ValueTask> FetchRange =
            static (s, offsetInChunk, buffer, ct) => (s with { Offset = s.Offset + offsetInChunk }).FetchAsync(buffer, ct);

        private async ValueTask FetchAsync(Memory<byte> buffer, CancellationToken ct)
        {
            int n = await Origin.ReadAsync(Object, Offset, buffer, ct).ConfigureAwait(false);
            if (n != buffer.Length)
            {
                // The origin promises the whole range of this version; fewer bytes means it changed.
                throw new OriginObjectChangedException($"'{Object.Path}' at the origin ended after {Offset + n} bytes, expected {Object.Size}");
            }
        }
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Read of '{Path}' at {Offset} failed ({Errno}): {Reason}")]
    private static partial void LogReadFailed(ILogger logger, string path, long offset, string errno, string reason);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Read of '{Path}' at {Offset} failed unexpectedly ({Errno})")]
    private static partial void LogReadFailedUnexpectedly(ILogger logger, string path, long offset, string errno, Exception exception);
}
