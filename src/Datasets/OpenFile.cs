namespace CsiCache.Datasets;

/// <summary>
/// One open of a file: the version it reads (fixed for the handle's life) and its read-ahead state.
/// Under zero-message opens there are no handles, and one instance per file
/// (<see cref="DatasetEntry.SharedRead"/>) serves every READ of it, from any thread.
/// </summary>
internal sealed class OpenFile(DatasetEntry entry, FileVersion version, bool passthrough = false, bool directIo = false)
{
    /// <summary>Reads of this handle never reach us: the kernel serves them from the cached chunk file.</summary>
    public bool Passthrough { get; } = passthrough;

    public DatasetEntry Entry { get; } = entry;

    public FileVersion Version { get; } = version;

    public ReadAheadWindow ReadAhead { get; } = new();

    /// <summary>Opened with FOPEN_DIRECT_IO (nothing of it was cached, or it was read at random): every read(2) is a READ of its own size.</summary>
    public bool DirectIo { get; } = directIo;

    private long _directReads;
    private long _directBytes;

    /// <summary>
    /// Counts a READ of a direct handle; true exactly once, at the <paramref name="verdictReads"/>-th
    /// READ, when their mean size is under <paramref name="minMean"/> (a small-read handle).
    /// </summary>
    public bool CountDirectRead(int size, int verdictReads, int minMean)
    {
        long bytes = Interlocked.Add(ref _directBytes, size);
        long reads = Interlocked.Increment(ref _directReads);
        return reads == verdictReads && bytes < (long)minMean * verdictReads;
    }
}

/// <summary>
/// One open of a directory: the listing its offsets index (kept even if a refresh replaces it). Under
/// zero-message opendirs one instance per directory (<see cref="DatasetEntry.SharedListing"/>) serves
/// every READDIR of it; it is immutable and <see cref="DirectoryListing"/> is thread-safe, so
/// concurrent READDIRs of one directory need no lock of their own.
/// </summary>
internal sealed class OpenDirectory(DatasetEntry entry, DirectoryListing listing)
{
    public DatasetEntry Entry { get; } = entry;

    public DirectoryListing Listing { get; } = listing;
}

/// <summary>
/// Handles handed to the kernel: a counter and a table. The counter starts at the current time in
/// microseconds, so a restarted process that takes over the connection never hands out a number
/// an earlier process gave to a handle that is still open (that would need the earlier one to have
/// opened more than one file per microsecond of its life). Handle 0 is never used.
/// </summary>
internal sealed class HandleTable<T>
    where T : class
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<ulong, T> _open = new();
    private long _next = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10; // microseconds since 1970

    public int Count => _open.Count;

    public ulong Add(T value)
    {
        ulong handle = (ulong)Interlocked.Increment(ref _next);
        _open[handle] = value;
        return handle;
    }

    public bool TryGet(ulong handle, out T value) => _open.TryGetValue(handle, out value!);

    /// <summary>Registers a handle an earlier process handed out (a takeover); the first one wins.</summary>
    public T Adopt(ulong handle, T value) => _open.GetOrAdd(handle, value);

    public bool TryRemove(ulong handle, out T value) => _open.TryRemove(handle, out value!);

    public void Clear() => _open.Clear();
}
