using CsiCache.Cache;
using CsiCache.Origins;

namespace CsiCache.Datasets;

/// <summary>What a listing or a stat said about an entry's size and time. Size is -1 when unknown (some HTTP listings).</summary>
internal sealed record EntryAttributes(long Size, DateTimeOffset? Modified);

/// <summary>
/// One version of a file as it will be read: the origin's object (with its version token) and the
/// cache key derived from it. A new version is a new key, so old chunks are never mixed with new bytes.
/// </summary>
internal sealed record FileVersion(OriginObject Object, ObjectKey Key, long CheckedAtTicks);

/// <summary>
/// One name in the dataset (a file, directory or symlink), known from its parent's listing. It is
/// the node the kernel refers to by <see cref="NodeId"/>; it holds metadata only, never file bytes.
/// </summary>
internal sealed class DatasetEntry
{
    private EntryAttributes _attributes;
    private FileVersion? _version;
    private DirectoryListing? _listing;
    private string? _linkTarget;
    private long _lookups;
    private bool _randomReads;

    public DatasetEntry(ulong nodeId, ulong parentId, string path, string name, OriginEntryKind kind, EntryAttributes attributes, string? listedVersion)
    {
        NodeId = nodeId;
        ParentId = parentId;
        Path = path;
        Name = name;
        Kind = kind;
        _attributes = attributes;
        ListedVersion = listedVersion;
    }

    /// <summary>The id the kernel knows this entry by: deterministic from <see cref="Path"/> (see <see cref="NodeIds"/>).</summary>
    public ulong NodeId { get; }

    /// <summary>The directory it was listed in (the root is its own parent).</summary>
    public ulong ParentId { get; }

    /// <summary>Path relative to the dataset root, '/'-separated; "" for the root.</summary>
    public string Path { get; }

    public string Name { get; }

    public OriginEntryKind Kind { get; }

    public bool IsDirectory => Kind == OriginEntryKind.Directory;

    /// <summary>The version token the listing gave (S3 ETag, POSIX token); null when it gave none (HTTP).</summary>
    public string? ListedVersion { get; private set; }

    public EntryAttributes Attributes
    {
        get => Volatile.Read(ref _attributes);
        set => Volatile.Write(ref _attributes, value);
    }

    /// <summary>The version reads use, once resolved (from the listing or a stat).</summary>
    public FileVersion? Version
    {
        get => Volatile.Read(ref _version);
        set => Volatile.Write(ref _version, value);
    }

    /// <summary>A directory's current listing; replaced (not mutated) when it is refreshed.</summary>
    public DirectoryListing? Listing => Volatile.Read(ref _listing);

    public string? LinkTarget
    {
        get => Volatile.Read(ref _linkTarget);
        set => Volatile.Write(ref _linkTarget, value);
    }

    /// <summary>References the kernel holds (LOOKUP and READDIRPLUS add, FORGET removes).</summary>
    public long Lookups => Interlocked.Read(ref _lookups);

    /// <summary>The version this entry had when last opened, to decide whether the kernel may keep its cached pages.</summary>
    public string? LastOpenedVersion { get; set; }

    /// <summary>
    /// Some READ of this file was fetched in ranges (a random reader): its later opens skip the
    /// page cache where cold opens do, so each pread(2) reaches us as one READ of its own size,
    /// not as page-cache READs plus the kernel's read-ahead beyond it.
    /// </summary>
    public bool RandomReads
    {
        get => Volatile.Read(ref _randomReads);
        set => Volatile.Write(ref _randomReads, value);
    }

    /// <summary>The first open's origin call while it runs, so that concurrent first opens make one (ChunkReader.ResolveForReadAsync).</summary>
    public Task<FileVersion>? FirstResolve;

    public void AddLookup() => Interlocked.Increment(ref _lookups);

    /// <summary>Removes <paramref name="count"/> references, never below zero (a confused kernel must not make us crash).</summary>
    public long Forget(ulong count)
    {
        while (true)
        {
            long current = Interlocked.Read(ref _lookups);
            long next = count >= (ulong)current ? 0 : current - (long)count;
            if (Interlocked.CompareExchange(ref _lookups, next, current) == current)
            {
                return next;
            }
        }
    }

    /// <summary>Carries the kernel's references over to an entry that replaces this one (same path, other kind).</summary>
    public void TakeLookupsFrom(DatasetEntry old) => Interlocked.Add(ref _lookups, old.Lookups);

    /// <summary>Installs a new listing unless someone else replaced <paramref name="expected"/> first; returns the one in place.</summary>
    public DirectoryListing ReplaceListing(DirectoryListing? expected, DirectoryListing replacement)
    {
        DirectoryListing? previous = Interlocked.CompareExchange(ref _listing, replacement, expected);
        return ReferenceEquals(previous, expected) ? replacement : previous!;
    }

    /// <summary>Updates what a fresher listing said. A changed version token drops the resolved version.</summary>
    public void UpdateFromListing(OriginEntry listed)
    {
        Attributes = new EntryAttributes(listed.Size, listed.Modified);
        if (listed.Version != ListedVersion)
        {
            ListedVersion = listed.Version;
            Version = null;
        }
    }

    /// <summary>How this file is open now (created on first open: most entries are never opened).</summary>
    public OpenState Opens
    {
        get
        {
            OpenState? state = Volatile.Read(ref _opens);
            return state ?? Interlocked.CompareExchange(ref _opens, new OpenState(), null) ?? _opens;
        }
    }

    private OpenState? _opens;

    /// <summary>
    /// The read state (version + read-ahead) every handle-0 READ of this file shares under
    /// zero-message opens, where the kernel opens files without telling us. Created by the first
    /// such READ, dropped when the kernel forgets the node (it cannot hold the file open then).
    /// </summary>
    public SharedSlot<OpenFile> SharedRead;

    /// <summary>
    /// The listing every handle-0 READDIR of this directory shares under zero-message opendirs, where
    /// the kernel opens directories without telling us: it fixes which <see cref="DirectoryListing"/>
    /// the cookies index, as a handle does. Created by the first such READDIR, dropped when the kernel
    /// forgets the node (no open directory can outlive its inode).
    /// </summary>
    public SharedSlot<OpenDirectory> SharedListing;

    public override string ToString() => $"{NodeId:x16} '{Path}' ({Kind})";
}

/// <summary>
/// The open handles of one file by I/O mode. The kernel puts an inode in one mode at a time:
/// a passthrough open while a cached (READ-served) open exists, or the reverse, fails the user's
/// open(2) with EIO; and all concurrent passthrough opens must share one backing file. So an open
/// joins whichever mode the inode is in, and only a file open nowhere may start passthrough.
/// </summary>
internal sealed class OpenState
{
    public Lock Gate { get; } = new();

    /// <summary>Handles served by READ.</summary>
    public int CachedOpens { get; set; }

    /// <summary>Handles served by the kernel from <see cref="Backing"/>.</summary>
    public int PassthroughOpens { get; set; }

    public CsiCache.Fuse.Passthrough.BackingId? Backing { get; set; }
}
