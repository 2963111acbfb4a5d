namespace CsiCache.Datasets;

/// <summary>One open of a file: the version it reads (fixed for the handle's life) and its read-ahead state.</summary>
internal sealed class OpenFile(DatasetEntry entry, FileVersion version)
{
    public DatasetEntry Entry { get; } = entry;

    public FileVersion Version { get; } = version;

    public ReadAheadWindow ReadAhead { get; } = new();
}

/// <summary>One open of a directory: the listing its offsets index (kept even if a refresh replaces it).</summary>
internal sealed class OpenDirectory(DatasetEntry entry, DirectoryListing listing)
{
    public DatasetEntry Entry { get; } = entry;

    public DirectoryListing Listing { get; } = listing;
}

/// <summary>Handles handed to the kernel: a counter and a table. Handle 0 is never used (some tools treat it as "none").</summary>
internal sealed class HandleTable<T>
    where T : class
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<ulong, T> _open = new();
    private long _next;

    public int Count => _open.Count;

    public ulong Add(T value)
    {
        ulong handle = (ulong)Interlocked.Increment(ref _next);
        _open[handle] = value;
        return handle;
    }

    public bool TryGet(ulong handle, out T value) => _open.TryGetValue(handle, out value!);

    public bool TryRemove(ulong handle, out T value) => _open.TryRemove(handle, out value!);

    public void Clear() => _open.Clear();
}
