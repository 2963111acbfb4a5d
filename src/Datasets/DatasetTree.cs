using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using CsiCache.Cache;
using CsiCache.Origins;

namespace CsiCache.Datasets;

/// <summary>
/// The dataset's namespace: node ids, the directory tree as far as the origin has been listed,
/// lookup counts, and the resolution of a file to the version its reads use. No kernel here:
/// <see cref="DatasetFileSystem"/> adapts this to FUSE, and tests drive it directly.
/// </summary>
/// <remarks>
/// <para>Directories are listed lazily, page by page (see <see cref="DirectoryListing"/>); a lookup
/// loads pages until the name turns up or the listing ends.</para>
/// <para>Metadata is kept for every entry listed while the dataset is mounted, whatever the kernel
/// forgets: after a FORGET (say under memory pressure, or a drop_caches) the next lookup must
/// not cost an origin round trip, and an id must keep meaning the same path. The memory this
/// costs is proportional to the number of names, never to file contents. Lookup counts are kept
/// exact, so a later change can drop unreferenced metadata of huge trees.</para>
/// <para>With a <c>refresh</c> TTL, a listing older than the TTL is fetched again on the next
/// lookup or opendir, and a file whose version was checked longer ago is stat'ed again on the
/// next open or getattr; a changed version token is a new cache key.</para>
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "SemaphoreSlim needs disposing only once its AvailableWaitHandle was used, which it never is here; the tree lives as long as its mount.")]
internal sealed class DatasetTree
{
    /// <summary>Linux NAME_MAX: the kernel refuses longer names, so such origin entries are not shown.</summary>
    public const int MaxNameBytes = 255;

    private readonly IOrigin _origin;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<ulong, DatasetEntry> _nodes = new();
    private readonly Func<CancellationToken, CancellationTokenSource> _deadline;
    private readonly SemaphoreSlim _walk = new(1, 1);
    private long _skippedNames;

    /// <param name="origin">Where listings and stats come from.</param>
    /// <param name="refresh">Revalidate metadata after this long; null: immutable while mounted.</param>
    /// <param name="time">Clock for the refresh TTL.</param>
    /// <param name="originDeadline">The longest a metadata call may wait for the origin (its timeout × attempts + backoff).</param>
    public DatasetTree(IOrigin origin, TimeSpan? refresh, TimeProvider? time = null, TimeSpan? originDeadline = null)
    {
        _origin = origin;
        Refresh = refresh;
        _time = time ?? TimeProvider.System;
        TimeSpan deadline = originDeadline ?? Timeout.InfiniteTimeSpan;
        _deadline = ct =>
        {
            var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            if (deadline != Timeout.InfiniteTimeSpan)
            {
                cts.CancelAfter(deadline);
            }
            return cts;
        };
        Root = new DatasetEntry(NodeIds.Root, NodeIds.Root, "", "", OriginEntryKind.Directory, new EntryAttributes(0, null), null);
        _nodes[NodeIds.Root] = Root;
    }

    public DatasetEntry Root { get; }

    public TimeSpan? Refresh { get; }

    public string OriginIdentity => _origin.Identity;

    /// <summary>Entries known (listed at least once).</summary>
    public int NodeCount => _nodes.Count;

    /// <summary>Origin entries not shown because their names cannot exist in a Linux directory.</summary>
    public long SkippedNames => Interlocked.Read(ref _skippedNames);

    public bool TryGetNode(ulong nodeId, out DatasetEntry entry) => _nodes.TryGetValue(nodeId, out entry!);

    /// <summary>Every entry known, for statistics and prefetch (a snapshot, in no order).</summary>
    public IEnumerable<DatasetEntry> KnownEntries => _nodes.Values;

    /// <summary>
    /// The entry for a node id this process has not handed out: after a restart that took over a
    /// live /dev/fuse connection, the kernel still holds the old ids. Ids are a hash of the path, so
    /// walking the listings (breadth first, as a fresh mount would) finds them again. One walk at a
    /// time, bounded by <paramref name="maxDirectories"/>; null when the id is not in the dataset.
    /// </summary>
    public async ValueTask<DatasetEntry?> FindByIdAsync(ulong nodeId, CancellationToken ct, int maxDirectories = 100_000)
    {
        if (_nodes.TryGetValue(nodeId, out DatasetEntry? known))
        {
            return known;
        }
        await _walk.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var pending = new Queue<DatasetEntry>();
            pending.Enqueue(Root);
            for (int listed = 0; pending.Count > 0 && listed < maxDirectories; listed++)
            {
                if (_nodes.TryGetValue(nodeId, out known))
                {
                    return known;
                }
                DatasetEntry directory = pending.Dequeue();
                await foreach (DatasetEntry child in ChildrenAsync(directory, ct).ConfigureAwait(false))
                {
                    if (child.NodeId == nodeId)
                    {
                        return child;
                    }
                    if (child.IsDirectory)
                    {
                        pending.Enqueue(child);
                    }
                }
            }
            return _nodes.TryGetValue(nodeId, out known) ? known : null;
        }
        finally
        {
            _walk.Release();
        }
    }

    /// <summary>Installs the root's first page, fetched by the mount-time check so it is not fetched twice.</summary>
    public void SeedRoot(OriginListPage firstPage)
    {
        DirectoryListing listing = CurrentListing(Root);
        listing.AddPage(Materialise(Root, firstPage.Entries), firstPage.ContinuationToken);
    }

    /// <summary>The listing to read a directory from (a new, empty one when none exists or the TTL has passed).</summary>
    public DirectoryListing CurrentListing(DatasetEntry directory)
    {
        DirectoryListing? current = directory.Listing;
        long now = _time.GetTimestamp();
        if (current is not null && (Refresh is null || _time.GetElapsedTime(current.CreatedTicks, now) < Refresh.Value))
        {
            return current;
        }
        return directory.ReplaceListing(current, new DirectoryListing(directory, now));
    }

    /// <summary>
    /// The entry at <paramref name="index"/> of <paramref name="listing"/>, fetching pages until it
    /// exists; false past the end.
    /// </summary>
    public async ValueTask<DatasetEntry?> GetEntryAtAsync(DirectoryListing listing, int index, CancellationToken ct)
    {
        while (true)
        {
            if (listing.TryGet(index, out DatasetEntry entry))
            {
                return entry;
            }
            if (!await LoadNextPageAsync(listing, ct).ConfigureAwait(false))
            {
                return listing.TryGet(index, out entry) ? entry : null;
            }
        }
    }

    /// <summary>Every entry of <paramref name="directory"/>'s current listing in order, fetching pages as they are reached.</summary>
    public async IAsyncEnumerable<DatasetEntry> ChildrenAsync(DatasetEntry directory, [EnumeratorCancellation] CancellationToken ct)
    {
        DirectoryListing listing = CurrentListing(directory);
        for (int i = 0; ; i++)
        {
            DatasetEntry? child = await GetEntryAtAsync(listing, i, ct).ConfigureAwait(false);
            if (child is null)
            {
                yield break;
            }
            yield return child;
        }
    }

    /// <summary>The child called <paramref name="name"/>, or null when the (whole) listing has no such name.</summary>
    public async ValueTask<DatasetEntry?> FindChildAsync(DatasetEntry directory, string name, CancellationToken ct)
    {
        DirectoryListing listing = CurrentListing(directory);
        while (true)
        {
            if (listing.TryFind(name, out DatasetEntry entry))
            {
                return entry;
            }
            if (!await LoadNextPageAsync(listing, ct).ConfigureAwait(false))
            {
                return listing.TryFind(name, out entry) ? entry : null;
            }
        }
    }

    /// <summary>Span flavour of <see cref="FindChildAsync"/> for the LOOKUP path: no string is made when the name is loaded already.</summary>
    public DatasetEntry? FindChild(DatasetEntry directory, ReadOnlySpan<char> name, CancellationToken ct)
    {
        DirectoryListing listing = CurrentListing(directory);
        if (listing.TryFind(name, out DatasetEntry entry))
        {
            return entry;
        }
        if (listing.IsComplete)
        {
            return null;
        }
        return WaitForOrigin(FindChildAsync(directory, name.ToString(), ct));
    }

    /// <summary>Fetches the next page; false when the listing was already complete.</summary>
    public async ValueTask<bool> LoadNextPageAsync(DirectoryListing listing, CancellationToken ct)
    {
        int before = listing.Count;
        await listing.Loading.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (listing.IsComplete)
            {
                return listing.Count != before;
            }
            if (listing.Count != before)
            {
                return true; // someone else loaded a page while we waited: look again first
            }
            DatasetEntry directory = listing.Directory;
            OriginListPage page;
            using (CancellationTokenSource deadline = _deadline(ct))
            {
                page = await _origin.ListAsync(directory.Path, listing.ContinuationToken, deadline.Token).ConfigureAwait(false);
            }
            listing.AddPage(Materialise(directory, page.Entries), page.ContinuationToken);
            if (page.Entries.Count == 0 && page.ContinuationToken is not null && page.ContinuationToken == listing.ContinuationToken)
            {
                throw new OriginException($"listing '{directory.Path}' in {_origin.Identity}: the origin returned the same continuation token twice");
            }
            return true;
        }
        finally
        {
            listing.Loading.Release();
        }
    }

    /// <summary>
    /// The version a read of <paramref name="file"/> will use: from the listing when it carried a
    /// version token and a size (S3, POSIX), else from a stat (HTTP). With a refresh TTL, a version
    /// checked longer ago than the TTL is stat'ed again.
    /// </summary>
    public async ValueTask<FileVersion> ResolveFileAsync(DatasetEntry file, CancellationToken ct)
    {
        FileVersion? known = file.Version;
        long now = _time.GetTimestamp();
        if (known is not null && !IsStale(known.CheckedAtTicks, now))
        {
            return known;
        }

        EntryAttributes listed = file.Attributes;
        if (known is null && file.ListedVersion is { } listedVersion && listed.Size >= 0)
        {
            // The listing told us everything a read needs: no stat.
            var fromListing = new OriginObject(file.Path, listed.Size, listedVersion, listed.Modified);
            var version = new FileVersion(fromListing, ObjectKey.From(_origin.Identity, file.Path, listedVersion), now);
            file.Version = version;
            return version;
        }

        OriginObject stat;
        using (CancellationTokenSource deadline = _deadline(ct))
        {
            stat = await _origin.StatAsync(file.Path, deadline.Token).ConfigureAwait(false);
        }
        return Adopt(file, known, stat, now);
    }

    /// <summary>
    /// True when the first open of <paramref name="file"/> must ask the origin for its version
    /// (the listing carried none: HTTP); <see cref="ResolveFileWithFirstBytesAsync"/> then gets
    /// the first bytes in the same round trip.
    /// </summary>
    public static bool NeedsStatToOpen(DatasetEntry file) => file.Version is null && file.ListedVersion is null;

    /// <summary>
    /// Resolves a file that <see cref="NeedsStatToOpen"/> and reads its first bytes into
    /// <paramref name="destination"/> with one origin call; the bytes are of the returned version.
    /// </summary>
    public async ValueTask<(FileVersion Version, int Read)> ResolveFileWithFirstBytesAsync(DatasetEntry file, Memory<byte> destination, CancellationToken ct)
    {
        OriginObject stat;
        int read;
        using (CancellationTokenSource deadline = _deadline(ct))
        {
            (stat, read) = await _origin.StatAndReadAsync(file.Path, destination, deadline.Token).ConfigureAwait(false);
        }
        return (Adopt(file, file.Version, stat, _time.GetTimestamp()), read);
    }

    /// <summary>Records a fresh stat as the file's attributes and version (the same version object when unchanged).</summary>
    private FileVersion Adopt(DatasetEntry file, FileVersion? known, OriginObject stat, long now)
    {
        FileVersion resolved = known is not null && known.Object.Version == stat.Version && known.Object.Size == stat.Size
            ? known with { CheckedAtTicks = now }
            : new FileVersion(stat, ObjectKey.From(_origin.Identity, file.Path, stat.Version), now);
        file.Attributes = new EntryAttributes(stat.Size, stat.Modified ?? file.Attributes.Modified);
        file.Version = resolved;
        return resolved;
    }

    /// <summary>Sync flavour for FUSE reader threads.</summary>
    public FileVersion ResolveFile(DatasetEntry file, CancellationToken ct) => WaitForOrigin(ResolveFileAsync(file, ct));

    /// <summary>Whether a file's size is known without asking the origin (LOOKUP must report one).</summary>
    public static bool HasSize(DatasetEntry entry) => entry.Kind != OriginEntryKind.File || entry.Attributes.Size >= 0;

    /// <summary>Whether a file's attributes are due for revalidation (refresh TTL passed since its last check).</summary>
    public bool NeedsRevalidation(DatasetEntry file)
    {
        if (Refresh is null || file.Kind != OriginEntryKind.File)
        {
            return false;
        }
        FileVersion? version = file.Version;
        return version is not null && IsStale(version.CheckedAtTicks, _time.GetTimestamp());
    }

    public async ValueTask<string> ReadLinkAsync(DatasetEntry link, CancellationToken ct)
    {
        if (link.LinkTarget is { } known)
        {
            return known;
        }
        string? target;
        using (CancellationTokenSource deadline = _deadline(ct))
        {
            target = await _origin.ReadLinkAsync(link.Path, deadline.Token).ConfigureAwait(false);
        }
        if (target is null)
        {
            throw new OriginNotFoundException($"'{link.Path}' in {_origin.Identity} is no longer a symlink");
        }
        link.LinkTarget = target;
        return target;
    }

    /// <summary>The kernel took a reference (LOOKUP, or a READDIRPLUS entry).</summary>
    public static void AddLookup(DatasetEntry entry) => entry.AddLookup();

    /// <summary>FORGET: the kernel dropped <paramref name="count"/> references. Returns what is left (-1: unknown node).</summary>
    public long Forget(ulong nodeId, ulong count)
    {
        if (nodeId == NodeIds.Root || !_nodes.TryGetValue(nodeId, out DatasetEntry? entry))
        {
            return nodeId == NodeIds.Root ? Root.Lookups : -1;
        }
        return entry.Forget(count);
    }

    /// <summary>Blocks a FUSE reader thread on an origin call; the call itself is bounded by the origin deadline.</summary>
    public static T WaitForOrigin<T>(ValueTask<T> pending)
    {
        if (pending.IsCompletedSuccessfully)
        {
            return pending.Result;
        }
#pragma warning disable VSTHRD002 // The FUSE seam is synchronous for metadata; reader threads are dedicated (no sync context), so blocking cannot deadlock.
        return pending.AsTask().GetAwaiter().GetResult();
#pragma warning restore VSTHRD002
    }

    private bool IsStale(long checkedTicks, long now) => Refresh is { } ttl && _time.GetElapsedTime(checkedTicks, now) >= ttl;

    /// <summary>Turns origin entries into tree entries, reusing the entry already known at a path (same id, same references).</summary>
    private List<DatasetEntry> Materialise(DatasetEntry directory, IReadOnlyList<OriginEntry> listed)
    {
        var result = new List<DatasetEntry>(listed.Count);
        foreach (OriginEntry item in listed)
        {
            if (!IsShowableName(item.Name))
            {
                Interlocked.Increment(ref _skippedNames);
                continue;
            }
            string path = directory.Path.Length == 0 ? item.Name : directory.Path + "/" + item.Name;
            result.Add(GetOrAdd(directory, path, item));
        }
        return result;
    }

    private DatasetEntry GetOrAdd(DatasetEntry directory, string path, OriginEntry item)
    {
        for (int salt = 0; ; salt++)
        {
            ulong id = NodeIds.ForPath(path, salt);
            while (true)
            {
                if (_nodes.TryGetValue(id, out DatasetEntry? existing))
                {
                    if (existing.Path != path)
                    {
                        break; // a collision: next salt
                    }
                    if (existing.Kind == item.Kind)
                    {
                        existing.UpdateFromListing(item);
                        return existing;
                    }
                    // Same path, other kind (a file became a directory): a new node under the same id.
                    DatasetEntry replacement = Create(id, directory, path, item);
                    if (_nodes.TryUpdate(id, replacement, existing))
                    {
                        replacement.TakeLookupsFrom(existing);
                        return replacement;
                    }
                    continue;
                }
                DatasetEntry created = Create(id, directory, path, item);
                if (_nodes.TryAdd(id, created))
                {
                    return created;
                }
            }
        }
    }

    private static DatasetEntry Create(ulong id, DatasetEntry directory, string path, OriginEntry item) =>
        new(id, directory.NodeId, path, item.Name, item.Kind, new EntryAttributes(item.Kind == OriginEntryKind.Directory ? 0 : item.Size, item.Modified), item.Version);

    private static bool IsShowableName(string name) =>
        name.Length > 0 && name != "." && name != ".."
        && !name.Contains('/', StringComparison.Ordinal) && !name.Contains('\0', StringComparison.Ordinal)
        && Encoding.UTF8.GetByteCount(name) <= MaxNameBytes;
}
