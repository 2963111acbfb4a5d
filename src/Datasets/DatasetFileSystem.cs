using System.Text;
using CsiCache.Fuse;
using CsiCache.Origins;
using Microsoft.Extensions.Logging;

namespace CsiCache.Datasets;

/// <summary>
/// The FUSE face of a dataset: a thin adapter that maps each request onto <see cref="DatasetTree"/>
/// (names, ids, metadata) or <see cref="ChunkReader"/> (bytes), and every failure onto an errno
/// through <see cref="ErrnoMap"/> (Mountpoint's <c>fuse.rs</c> over <c>S3Filesystem</c>).
/// </summary>
/// <remarks>
/// Timeouts: an immutable dataset lets the kernel cache names, attributes and pages for a long
/// time (<see cref="ImmutableTimeout"/>) and keep pages across opens (FOPEN_KEEP_CACHE). With a
/// refresh TTL, names and attributes are trusted for the TTL, and pages are kept across opens only
/// while the file's version has not changed.
/// </remarks>
internal sealed partial class DatasetFileSystem : IFuseFileSystem
{
    /// <summary>
    /// How long the kernel may trust names and attributes of an immutable dataset. Not "forever":
    /// a day bounds the damage if an origin is changed in place against the contract, and a kernel
    /// revalidation once a day per inode costs nothing.
    /// </summary>
    public static readonly TimeSpan ImmutableTimeout = TimeSpan.FromDays(1);

    private const int ORdOnly = 0;
    private const int OAccMode = 3;
    private const uint FileMode = FuseFileType.Regular | 0x124;      // r--r--r--: a dataset is read-only for everyone
    private const uint DirectoryMode = FuseFileType.Directory | 0x16D; // r-xr-xr-x
    private const uint SymlinkMode = FuseFileType.Symlink | 0x1FF;   // lrwxrwxrwx, as symlinks always are

    private readonly DatasetTree _tree;
    private readonly ChunkReader _reader;
    private readonly HandleTable<OpenFile> _files = new();
    private readonly HandleTable<OpenDirectory> _directories = new();
    private readonly TimeSpan _timeout;
    private readonly FuseTimestamp _mountTime;
    private readonly CancellationToken _stopping;
    private readonly ILogger _logger;
    private readonly Func<(long Blocks, long Free)> _space;

    public DatasetFileSystem(DatasetTree tree, ChunkReader reader, ILogger logger, CancellationToken stopping, Func<(long Blocks, long Free)>? space = null)
    {
        _tree = tree;
        _reader = reader;
        _logger = logger;
        _stopping = stopping;
        _timeout = tree.Refresh ?? ImmutableTimeout;
        _mountTime = FuseTimestamp.FromDateTimeOffset(DateTimeOffset.UtcNow);
        _space = space ?? (() => (0, 0));
    }

    /// <summary>Files open now.</summary>
    public int OpenFiles => _files.Count;

    /// <summary>Set once INIT is negotiated; the place where passthrough would be taken up.</summary>
    public FuseConnection? Connection { get; private set; }

    public void Init(FuseConnection connection) => Connection = connection;

    public void Destroy()
    {
        _files.Clear();
        _directories.Clear();
    }

    public Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseEntry entry)
    {
        entry = default;
        if (!_tree.TryGetNode(parent, out DatasetEntry directory))
        {
            return Errno.ESTALE; // an id we never gave out (or from before a restart we cannot map)
        }
        if (!directory.IsDirectory)
        {
            return Errno.ENOTDIR;
        }
        if (name.Length > DatasetTree.MaxNameBytes)
        {
            return Errno.ENAMETOOLONG;
        }
        try
        {
            Span<char> chars = stackalloc char[DatasetTree.MaxNameBytes];
            int length = Encoding.UTF8.GetChars(name, chars);
            DatasetEntry? child = _tree.FindChild(directory, chars[..length], _stopping);
            if (child is null)
            {
                // A negative entry: on an immutable dataset the name stays missing.
                entry.EntryTimeout = _timeout;
                return Errno.ENOENT;
            }
            if (!DatasetTree.HasSize(child) || _tree.NeedsRevalidation(child))
            {
                _tree.ResolveFile(child, _stopping);
            }
            entry = ToEntry(child);
            DatasetTree.AddLookup(child);
            return Errno.Ok;
        }
        catch (Exception e)
        {
            return Fail("lookup", directory.Path, e);
        }
    }

    public void Forget(ulong nodeId, ulong lookups) => _tree.Forget(nodeId, lookups);

    public Errno GetAttr(ulong nodeId, out FuseAttributes attributes, out TimeSpan timeout)
    {
        attributes = default;
        timeout = _timeout;
        if (!_tree.TryGetNode(nodeId, out DatasetEntry node))
        {
            return Errno.ESTALE;
        }
        try
        {
            if (!DatasetTree.HasSize(node) || _tree.NeedsRevalidation(node))
            {
                _tree.ResolveFile(node, _stopping);
            }
            attributes = ToAttributes(node);
            return Errno.Ok;
        }
        catch (Exception e)
        {
            return Fail("getattr", node.Path, e);
        }
    }

    public Errno ReadLink(ulong nodeId, Span<byte> target, out int length)
    {
        length = 0;
        if (!_tree.TryGetNode(nodeId, out DatasetEntry node))
        {
            return Errno.ESTALE;
        }
        if (node.Kind != OriginEntryKind.Symlink)
        {
            return Errno.EINVAL;
        }
        try
        {
            string link = DatasetTree.WaitForOrigin(_tree.ReadLinkAsync(node, _stopping));
            if (Encoding.UTF8.GetByteCount(link) > target.Length)
            {
                return Errno.ENAMETOOLONG;
            }
            length = Encoding.UTF8.GetBytes(link, target);
            return Errno.Ok;
        }
        catch (Exception e)
        {
            return Fail("readlink", node.Path, e);
        }
    }

    public Errno Open(ulong nodeId, int flags, out FuseOpenResult result)
    {
        result = default;
        if ((flags & OAccMode) != ORdOnly)
        {
            return Errno.EROFS;
        }
        if (!_tree.TryGetNode(nodeId, out DatasetEntry node))
        {
            return Errno.ESTALE;
        }
        if (node.IsDirectory)
        {
            return Errno.EISDIR;
        }
        try
        {
            FileVersion version = _tree.ResolveFile(node, _stopping);
            var open = new OpenFile(node, version);
            FuseOpenOptions options = FuseOpenOptions.NoFlush;
            // The kernel may keep pages from earlier opens only when they hold this same version.
            string? previous = node.LastOpenedVersion;
            node.LastOpenedVersion = version.Object.Version;
            if (_tree.Refresh is null || previous is null || previous == version.Object.Version)
            {
                options |= FuseOpenOptions.KeepCache;
            }
            // Passthrough goes here: when the connection offers it and the whole file is one cached
            // chunk file, register that file as the backing file (one BackingId per node, released
            // with the last handle) and answer FOPEN_PASSTHROUGH. Not done yet; READ serves it.
            result = new FuseOpenResult { Handle = _files.Add(open), Options = options };
            return Errno.Ok;
        }
        catch (Exception e)
        {
            return Fail("open", node.Path, e);
        }
    }

    public ValueTask<FuseReadResult> ReadAsync(ulong nodeId, ulong handle, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (!_files.TryGet(handle, out OpenFile open))
        {
            return new ValueTask<FuseReadResult>(Errno.EBADF);
        }
        return _reader.ReadAsync(open, offset, destination, cancellationToken);
    }

    public void Release(ulong nodeId, ulong handle) => _files.TryRemove(handle, out _);

    public Errno OpenDir(ulong nodeId, int flags, out FuseOpenResult result)
    {
        result = default;
        if (!_tree.TryGetNode(nodeId, out DatasetEntry node))
        {
            return Errno.ESTALE;
        }
        if (!node.IsDirectory)
        {
            return Errno.ENOTDIR;
        }
        DirectoryListing listing = _tree.CurrentListing(node);
        FuseOpenOptions options = FuseOpenOptions.None;
        if (_tree.Refresh is null)
        {
            // The listing never changes while mounted: let the kernel cache it.
            options |= FuseOpenOptions.KeepCache | FuseOpenOptions.CacheDir;
        }
        result = new FuseOpenResult { Handle = _directories.Add(new OpenDirectory(node, listing)), Options = options };
        return Errno.Ok;
    }

    /// <summary>
    /// Offsets (cookies): 1 after ".", 2 after "..", 3 + i after child i of the listing the handle
    /// opened, so a listing that grows page by page keeps every earlier cookie valid.
    /// </summary>
    public Errno ReadDir(ulong nodeId, ulong handle, ulong offset, ref DirectoryWriter writer)
    {
        if (!_directories.TryGet(handle, out OpenDirectory open))
        {
            return Errno.EBADF;
        }
        try
        {
            DatasetEntry directory = open.Entry;
            if (offset == 0)
            {
                FuseEntry self = ToEntry(directory);
                if (!writer.TryAdd("."u8, self, 1))
                {
                    return Errno.Ok;
                }
            }
            if (offset <= 1)
            {
                FuseEntry parent = _tree.TryGetNode(directory.ParentId, out DatasetEntry p) ? ToEntry(p) : ToEntry(directory);
                if (!writer.TryAdd(".."u8, parent, 2))
                {
                    return Errno.Ok;
                }
            }

            Span<byte> name = stackalloc byte[DatasetTree.MaxNameBytes];
            for (long index = offset <= 2 ? 0 : (long)offset - 2; index < int.MaxValue; index++)
            {
                DatasetEntry? child = open.Listing.TryGet((int)index, out DatasetEntry loaded)
                    ? loaded
                    : DatasetTree.WaitForOrigin(_tree.GetEntryAtAsync(open.Listing, (int)index, _stopping));
                if (child is null)
                {
                    break; // the end of the directory
                }
                int nameLength = Encoding.UTF8.GetBytes(child.Name, name);
                FuseEntry entry = ToEntry(child);
                if (writer.IsPlus && !DatasetTree.HasSize(child))
                {
                    // No size without a stat per entry (HTTP listings may omit it): send the name only,
                    // and the kernel looks it up when someone stats it.
                    entry.NodeId = 0;
                    entry.AttrTimeout = TimeSpan.Zero;
                    entry.EntryTimeout = TimeSpan.Zero;
                }
                if (!writer.TryAdd(name[..nameLength], entry, (ulong)index + 3))
                {
                    break;
                }
                if (writer.IsPlus && entry.NodeId != 0)
                {
                    DatasetTree.AddLookup(child); // the kernel now holds a reference, as after LOOKUP
                }
            }
            return Errno.Ok;
        }
        catch (Exception e)
        {
            return Fail("readdir", open.Entry.Path, e);
        }
    }

    public void ReleaseDir(ulong nodeId, ulong handle) => _directories.TryRemove(handle, out _);

    public Errno StatFs(ulong nodeId, out FuseStatFs stats)
    {
        // Blocks: the cache's quota and what is free in it, which is what a user of a read-only
        // dataset can act on; files: the entries known so far.
        (long blocks, long free) = _space();
        const uint BlockSize = 4096;
        stats = new FuseStatFs
        {
            BlockSize = BlockSize,
            FragmentSize = BlockSize,
            Blocks = (ulong)Math.Max(0, blocks / BlockSize),
            BlocksFree = (ulong)Math.Max(0, free / BlockSize),
            BlocksAvailable = 0, // nothing can be written
            Files = (ulong)_tree.NodeCount,
            FilesFree = 0,
            NameLength = DatasetTree.MaxNameBytes,
        };
        return Errno.Ok;
    }

    public Errno Access(ulong nodeId, int mask) => (mask & 2) != 0 ? Errno.EROFS : Errno.Ok;

    private FuseEntry ToEntry(DatasetEntry node) => new()
    {
        NodeId = node.NodeId,
        Generation = 0, // ids are never reused for another path (see NodeIds)
        EntryTimeout = _timeout,
        AttrTimeout = _timeout,
        Attributes = ToAttributes(node),
    };

    private FuseAttributes ToAttributes(DatasetEntry node)
    {
        EntryAttributes a = node.Attributes;
        ulong size = a.Size < 0 ? 0 : (ulong)a.Size;
        FuseTimestamp time = a.Modified is { } modified ? FuseTimestamp.FromDateTimeOffset(modified) : _mountTime;
        return new FuseAttributes
        {
            Ino = node.NodeId,
            Size = size,
            Blocks = (size + 511) / 512,
            ATime = time,
            MTime = time,
            CTime = time,
            Mode = node.Kind switch
            {
                OriginEntryKind.Directory => DirectoryMode,
                OriginEntryKind.Symlink => SymlinkMode,
                _ => FileMode,
            },
            NLink = node.IsDirectory ? 2u : 1u,
            // st_blksize: what cp and stdio size their buffers by; a chunk-sized hint lines them up with the cache.
            BlockSize = (uint)Math.Min(_reader.ChunkSize, 1 << 20),
        };
    }

    private Errno Fail(string operation, string path, Exception e)
    {
        Errno errno = ErrnoMap.From(e);
        if (ErrnoMap.IsExpected(e))
        {
            LogOperationFailed(_logger, operation, path, errno.ToString(), e.Message);
        }
        else
        {
            LogOperationFailedUnexpectedly(_logger, operation, path, errno.ToString(), e);
        }
        return errno;
    }

    [LoggerMessage(EventId = 3010, Level = LogLevel.Information, Message = "{Operation} '{Path}' failed ({Errno}): {Reason}")]
    private static partial void LogOperationFailed(ILogger logger, string operation, string path, string errno, string reason);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Warning, Message = "{Operation} '{Path}' failed unexpectedly ({Errno})")]
    private static partial void LogOperationFailedUnexpectedly(ILogger logger, string operation, string path, string errno, Exception exception);
}
