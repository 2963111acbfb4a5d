using System.Text;
using CsiCache.Fuse;
using CsiCache.Fuse.Passthrough;
using CsiCache.Origins;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

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
/// <para><b>Zero-message opens.</b> An immutable mount without passthrough needs nothing from OPEN:
/// the version is the node's, and pages may always be kept. Where the kernel offers it
/// (<see cref="FuseConnection.NoOpenSupported"/>), OPEN is answered ENOSYS: the kernel then opens
/// that file and every later regular file of this connection itself, with handle 0 and its default
/// FOPEN_KEEP_CACHE, and never sends OPEN or RELEASE again: a small file costs its READs only, and
/// nothing at all once its pages are cached. Without FOPEN_NOFLUSH each close would send a FLUSH, so FLUSH is answered ENOSYS
/// too, which the kernel also remembers. Handle-0 READs are served by node id from one read state
/// per file (<see cref="DatasetEntry.SharedRead"/>). Refresh mounts (a version per open, KEEP_CACHE
/// only while unchanged) and passthrough (a backing id per open) keep OPEN.</para>
/// <para><b>Passthrough or zero-message: the first open decides.</b> Passthrough hands the kernel a
/// backing file per OPEN; zero-message opens decline OPEN, which the kernel remembers for the
/// connection's life; so a mount has one or the other. <see cref="PassthroughMode.Off"/> gives
/// zero-message opens and <see cref="PassthroughMode.Always"/> passthrough (OPEN kept for every
/// file), both fixed at INIT. Under <see cref="PassthroughMode.Auto"/>, where the kernel granted
/// passthrough and offers zero-message opens, INIT leaves the choice to the first regular-file OPEN
/// and that file's size: larger than one chunk keeps OPEN for good (passthrough for files the cache
/// holds whole, READ for the rest); otherwise that OPEN and every later one is answered ENOSYS.
/// Datasets are mostly homogeneous: a tree of small images wants zero-message opens (a warm small
/// file then costs no request at all, where a passthrough open costs an OPEN, a RELEASE and two
/// backing-file ioctls), a set of large shards or one big file wants passthrough (reads at the
/// backing file's speed, no READ per MiB through us), and the first file opened tells which.
/// Concurrent first opens agree through one compare-and-swap. Without passthrough from the kernel
/// Auto is zero-message opens; without FUSE_NO_OPEN_SUPPORT it keeps OPEN, with passthrough.</para>
/// <para><b>Zero-message opendirs.</b> The same bargain for directories, where the kernel offers it
/// (<see cref="FuseConnection.NoOpendirSupported"/>): on an immutable mount a directory's listing
/// never changes, so OPENDIR has nothing to decide and is answered ENOSYS. The kernel then opens
/// every directory of this connection itself, with handle 0, sends no OPENDIR or RELEASEDIR again,
/// and gives each such open its default flags, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR: once a
/// directory has been read to its end, later listings of it come from the kernel's cache of the
/// entries with no request at all, until its inode is evicted. A recursive walk of a warm tree then
/// costs no round trip per directory. Handle-0 READDIRs are served by node id from one listing per
/// directory (<see cref="DatasetEntry.SharedListing"/>). Refresh mounts keep OPENDIR: a listing older
/// than the TTL must be fetched again, and the kernel's cached listing would hide it. Passthrough
/// does not matter here: it is for regular files only, and OPENDIR never passes a backing file.</para>
/// <para><b>Cold opens skip the page cache.</b> Where OPEN is kept, a file of which the cache holds
/// nothing yet is opened with FOPEN_DIRECT_IO (only where the kernel granted
/// FUSE_DIRECT_IO_ALLOW_MMAP, so shared mmap still works): each read(2) comes to us as one READ
/// of its own size, and our reply is copied straight into the reader's buffer. Through the page
/// cache the same bytes were copied into fresh page-cache pages and then again to the reader,
/// which on a 2-core node cost a cold 1 MiB reader a third of its speed (BENCHMARKS.md). The
/// price is that small reads lose the kernel's read-ahead: each one is a round trip. So the
/// first direct handle that shows small reads (a mean under <see cref="DirectIoMinMeanRead"/> over
/// its first <see cref="DirectIoVerdictReads"/> READs) turns cold direct opens off for the rest
/// of the mount. Once any of a file is cached, its opens use the page cache (KEEP_CACHE) or
/// passthrough as before, unless it was read at random (<see cref="DatasetEntry.RandomReads"/>):
/// then its opens stay direct, so each pread(2) is one READ of its own size rather than
/// page-cache READs plus the kernel's read-ahead beyond it.</para>
/// </remarks>
internal sealed partial class DatasetFileSystem : IFuseFileSystem
{
    /// <summary>
    /// How long the kernel may trust names and attributes of an immutable dataset. Not "forever":
    /// a day bounds the damage if an origin is changed in place against the contract, and a kernel
    /// revalidation once a day per inode costs nothing.
    /// </summary>
    public static readonly TimeSpan ImmutableTimeout = TimeSpan.FromDays(1);

    /// <summary>Cold direct opens stay on while direct handles read at least this much per READ on average …</summary>
    internal const int DirectIoMinMeanRead = 128 << 10;

    /// <summary>… judged over this many READs of one handle.</summary>
    internal const int DirectIoVerdictReads = 16;

    private const int ORdOnly = 0;
    private const int OAccMode = 3;
    private const uint FileMode = FuseFileType.Regular | 0x124;      // r--r--r--: a dataset is read-only for everyone
    private const uint DirectoryMode = FuseFileType.Directory | 0x16D; // r-xr-xr-x
    private const uint SymlinkMode = FuseFileType.Symlink | 0x1FF;   // lrwxrwxrwx, as symlinks always are

    private readonly DatasetTree _tree;
    private readonly ChunkReader _reader;
    private readonly DirectoryReadAhead? _directoryReadAhead;
    private readonly HandleTable<OpenFile> _files = new();
    private readonly HandleTable<OpenDirectory> _directories = new();
    private readonly TimeSpan _timeout;
    private readonly FuseTimestamp _mountTime;
    private readonly CancellationToken _stopping;
    private readonly ILogger _logger;
    private readonly Func<(long Blocks, long Free)> _space;
    private readonly PassthroughMode _passthrough;
    private readonly bool _coldDirectIoWanted;
    private int _coldDirectIo; // 1 while cold opens get FOPEN_DIRECT_IO (set at INIT, cleared by small reads)
    private long _passthroughOpens;
    private long _directOpens;
    private int _openMode; // a FileOpenMode; Open until INIT says otherwise
    private bool _zeroMessageOpenDir;
    private int _sharedReads;
    private int _sharedListings;

    public DatasetFileSystem(DatasetTree tree, ChunkReader reader, ILogger logger, CancellationToken stopping, Func<(long Blocks, long Free)>? space = null, PassthroughMode passthrough = PassthroughMode.Off, bool coldDirectIo = false, DirectoryReadAhead? directoryReadAhead = null)
    {
        _directoryReadAhead = directoryReadAhead;
        _passthrough = passthrough;
        _coldDirectIoWanted = coldDirectIo;
        _tree = tree;
        _reader = reader;
        _logger = logger;
        _stopping = stopping;
        _timeout = tree.Refresh ?? ImmutableTimeout;
        _mountTime = FuseTimestamp.FromDateTimeOffset(DateTimeOffset.UtcNow);
        _space = space ?? (() => (0, 0));
    }

    /// <summary>
    /// Handles open now (from OPEN). Under zero-message opens the kernel opens files without telling
    /// us, so this stays 0 there; <see cref="FilesReadWithoutOpen"/> counts those files instead.
    /// </summary>
    public int OpenFiles => _files.Count;

    /// <summary>Files with a shared read state (zero-message opens): read since the kernel last looked them up, one per file, never per read.</summary>
    public int FilesReadWithoutOpen => Volatile.Read(ref _sharedReads);

    /// <summary>True when OPEN of regular files is answered ENOSYS (decided at INIT, or by the first open; see the remarks).</summary>
    public bool ZeroMessageOpen => FileOpens == FileOpenMode.ZeroMessage;

    /// <summary>How OPEN of regular files is answered now: <see cref="FileOpenMode.FirstOpenDecides"/> changes once, at the first open.</summary>
    public FileOpenMode FileOpens => (FileOpenMode)Volatile.Read(ref _openMode);

    /// <summary>True when OPENDIR is answered ENOSYS (decided at INIT; see the remarks).</summary>
    public bool ZeroMessageOpenDir => _zeroMessageOpenDir;

    /// <summary>Directory handles open now (from OPENDIR); stays 0 under zero-message opendirs.</summary>
    public int OpenDirectories => _directories.Count;

    /// <summary>Directories with a shared listing (zero-message opendirs): listed since the kernel last looked them up, one per directory.</summary>
    public int DirectoriesListedWithoutOpen => Volatile.Read(ref _sharedListings);

    /// <summary>Set once INIT is negotiated; the place where passthrough would be taken up.</summary>
    public FuseConnection? Connection { get; private set; }

    public void Init(FuseConnection connection)
    {
        Connection = connection;
        // Before INIT's reply, so before any OPEN. Passthrough counts only when the kernel granted
        // it: asked for but refused, every open would be READ-served anyway.
        // Each decision is its reason to stay off, or none.
        bool passthrough = _passthrough != PassthroughMode.Off && connection.PassthroughEnabled;
        string? openOff = _tree.Refresh is not null ? "refresh mount: versions are checked per open"
            : passthrough && _passthrough == PassthroughMode.Always ? "passthrough needs OPEN to pass a backing file"
            : !connection.NoOpenSupported ? "the kernel does not offer FUSE_NO_OPEN_SUPPORT"
            : null;
        FileOpenMode mode = openOff is not null ? FileOpenMode.Open
            : passthrough ? FileOpenMode.FirstOpenDecides
            : FileOpenMode.ZeroMessage;
        Volatile.Write(ref _openMode, (int)mode);
        Volatile.Write(ref _coldDirectIo, _coldDirectIoWanted && connection.DirectIoMmapAllowed ? 1 : 0);
        LogOpenMode(_logger, mode switch { FileOpenMode.ZeroMessage => "on", FileOpenMode.Open => "off", _ => "undecided" },
            openOff ?? (passthrough ? "passthrough granted: the first regular file opened decides" : "immutable mount"));

        // Directories: only the listing's stability matters. Passthrough is for regular files (the
        // kernel never attaches a backing file to a directory), so it does not enter the decision.
        string? openDirOff = _tree.Refresh is not null ? "refresh mount: listings are fetched again after the TTL"
            : !connection.NoOpendirSupported ? "the kernel does not offer FUSE_NO_OPENDIR_SUPPORT"
            : null;
        _zeroMessageOpenDir = openDirOff is null;
        LogOpenDirMode(_logger, _zeroMessageOpenDir ? "on" : "off", openDirOff ?? "immutable mount");
    }

    public void Destroy()
    {
        _files.Clear();
        _directories.Clear();
    }

    public Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseEntry entry)
    {
        entry = default;
        if (!TryResolveNode(parent, out DatasetEntry directory))
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

    public void Forget(ulong nodeId, ulong lookups)
    {
        // At zero the kernel has dropped the inode, and with it every open file or directory of it:
        // the shared read state or listing can go (a READ or READDIR racing this, possible only with
        // counts lost to a takeover, just builds it again; a directory's listing itself stays with
        // the node, so cookies mean the same entries in the rebuilt one).
        if (_tree.Forget(nodeId, lookups) != 0 || !_tree.TryGetNode(nodeId, out DatasetEntry node))
        {
            return;
        }
        if (node.SharedRead.Take() is not null)
        {
            Interlocked.Decrement(ref _sharedReads);
        }
        if (node.SharedListing.Take() is not null)
        {
            Interlocked.Decrement(ref _sharedListings);
        }
    }

    public Errno GetAttr(ulong nodeId, out FuseAttributes attributes, out TimeSpan timeout)
    {
        attributes = default;
        timeout = _timeout;
        if (!TryResolveNode(nodeId, out DatasetEntry node))
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
        if (!TryResolveNode(nodeId, out DatasetEntry node))
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
        FileOpenMode mode = FileOpens;
        if (mode == FileOpenMode.ZeroMessage)
        {
            // "Nothing to open": the kernel completes this open(2) itself with handle 0 and default
            // flags (FOPEN_KEEP_CACHE), and from now on opens and closes regular files of this
            // connection without a word to us. Reads arrive with handle 0 (see ReadAsync).
            return Errno.ENOSYS;
        }
        if (!TryResolveNode(nodeId, out DatasetEntry node))
        {
            return Errno.ESTALE;
        }
        if (node.IsDirectory)
        {
            return Errno.EISDIR;
        }
        try
        {
            if (mode == FileOpenMode.FirstOpenDecides && DecideOpenMode(node) == FileOpenMode.ZeroMessage)
            {
                return Errno.ENOSYS; // as above: this open is the one the kernel remembers
            }
            _directoryReadAhead?.OnFirstRead(node);
            FileVersion version = _reader.ResolveForRead(_tree, node, _stopping);
            FuseOpenOptions options = FuseOpenOptions.NoFlush;
            // The kernel may keep pages from earlier opens only when they hold this same version.
            string? previous = node.LastOpenedVersion;
            node.LastOpenedVersion = version.Object.Version;
            if (_tree.Refresh is null || previous is null || previous == version.Object.Version)
            {
                options |= FuseOpenOptions.KeepCache;
            }

            OpenState opens = node.Opens;
            lock (opens.Gate)
            {
                int backingId = TryPassthrough(opens, version);
                // Not passthrough, and nothing of it cached, or read at random: around the page cache (see the remarks).
                bool direct = backingId == 0 && Volatile.Read(ref _coldDirectIo) != 0 && (node.RandomReads || !_reader.Cache.ContainsAnyOf(version.Key));
                var open = new OpenFile(node, version, passthrough: backingId != 0, directIo: direct);
                if (open.Passthrough)
                {
                    opens.PassthroughOpens++;
                    // The kernel allows only PASSTHROUGH, DIRECT_IO, PARALLEL_DIRECT_WRITES and NOFLUSH
                    // with a backing file (FOPEN_PASSTHROUGH_MASK); KEEP_CACHE would fail open(2) with EIO.
                    // The page cache is not used in this mode anyway.
                    options = (options & ~FuseOpenOptions.KeepCache) | FuseOpenOptions.Passthrough;
                }
                else
                {
                    opens.CachedOpens++;
                    if (open.DirectIo)
                    {
                        // KEEP_CACHE stays, so this open does not throw away pages another open may have.
                        options |= FuseOpenOptions.DirectIo;
                        Interlocked.Increment(ref _directOpens);
                    }
                }
                result = new FuseOpenResult { Handle = _files.Add(open), Options = options, BackingId = backingId };
            }
            return Errno.Ok;
        }
        catch (Exception e)
        {
            return Fail("open", node.Path, e);
        }
    }

    /// <summary>
    /// Passthrough <see cref="PassthroughMode.Auto"/>: the first regular file opened fixes how this
    /// connection answers OPEN (see the remarks), from its size alone, so the decision costs no
    /// origin request where the listing had the size (LOOKUP has resolved it in any case). Concurrent
    /// first opens all return the mode the one compare-and-swap that won installed, so none of them
    /// answers OPEN while another answers ENOSYS. Nothing was answered before: an undecided
    /// connection has had no open of a regular file, hence no FLUSH, RELEASE or handle READ either.
    /// </summary>
    private FileOpenMode DecideOpenMode(DatasetEntry node)
    {
        if (!DatasetTree.HasSize(node))
        {
            _tree.ResolveFile(node, _stopping);
        }
        long size = node.Attributes.Size;
        bool large = size > _reader.Cache.ChunkSize;
        FileOpenMode chosen = large ? FileOpenMode.Open : FileOpenMode.ZeroMessage;
        int won = Interlocked.CompareExchange(ref _openMode, (int)chosen, (int)FileOpenMode.FirstOpenDecides);
        if (won != (int)FileOpenMode.FirstOpenDecides)
        {
            return (FileOpenMode)won; // a concurrent first open decided first
        }
        LogOpenModeDecided(_logger, node.Path, size, large ? "off" : "on",
            large ? "larger than a chunk: OPEN kept for passthrough" : "at most a chunk: small files want no OPEN");
        return chosen;
    }

    /// <summary>Opens handed out with FOPEN_DIRECT_IO because nothing of the file was cached, or it was read at random.</summary>
    public long ColdDirectOpens => Interlocked.Read(ref _directOpens);

    /// <summary>Whether cold opens still get FOPEN_DIRECT_IO (false once small reads were seen, or when INIT did not allow it).</summary>
    public bool ColdDirectIo => Volatile.Read(ref _coldDirectIo) != 0;

    /// <summary>Passthrough opens served so far (the kernel read them without a READ reaching us).</summary>
    public long PassthroughOpensServed => Interlocked.Read(ref _passthroughOpens);

    /// <summary>
    /// FUSE_PASSTHROUGH for a file the cache holds whole in one file (<see cref="CsiCache.Cache.ChunkCache.TryOpenWholeObject"/>):
    /// the kernel then reads that file itself, at native speed. Only on an immutable dataset (a refresh could change the version
    /// under an open backing file), only when no READ-served handle is open on the inode, and all
    /// concurrent passthrough opens share one backing id. Returns the backing id, or 0 for READ.
    /// Called under <paramref name="opens"/>' lock.
    /// </summary>
    private int TryPassthrough(OpenState opens, FileVersion version)
    {
        if (opens.PassthroughOpens > 0 && opens.Backing is { } shared)
        {
            Interlocked.Increment(ref _passthroughOpens);
            return shared.Id;
        }
        if (_passthrough == PassthroughMode.Off || opens.CachedOpens > 0 || _tree.Refresh is not null || Connection is not { PassthroughEnabled: true } connection)
        {
            return 0;
        }
        if (!_reader.Cache.TryOpenWholeObject(version.Key, version.Object.Size, out SafeFileHandle? file))
        {
            return 0;
        }
        using (file)
        {
            // The kernel takes its own reference to the file: eviction may unlink it afterwards.
            if (!connection.TryOpenBackingFile(file, out BackingId? backing, out Errno error))
            {
                return 0;
            }
            _ = error;
            opens.Backing = backing;
            Interlocked.Increment(ref _passthroughOpens);
            return backing!.Id;
        }
    }

    public ValueTask<FuseReadResult> ReadAsync(ulong nodeId, ulong handle, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (handle == 0)
        {
            // A zero-message open (we never hand out handle 0): the node's shared read state. Once it
            // exists a hit costs what a handle's does: one lookup, no allocation.
            if (_tree.TryGetNode(nodeId, out DatasetEntry node) && node.SharedRead.Value is { } shared
                && (_tree.Refresh is null || ReferenceEquals(shared.Version, node.Version)))
            {
                return _reader.ReadAsync(shared, offset, destination, cancellationToken);
            }
            return ReadWithoutOpenAsync(nodeId, offset, destination, cancellationToken);
        }
        if (!_files.TryGet(handle, out OpenFile open) && !TryAdoptFile(nodeId, handle, out open))
        {
            return new ValueTask<FuseReadResult>(Errno.EBADF);
        }
        if (open.DirectIo && open.CountDirectRead(destination.Length, DirectIoVerdictReads, DirectIoMinMeanRead)
            && Interlocked.Exchange(ref _coldDirectIo, 0) != 0)
        {
            LogColdDirectIoOff(_logger, open.Entry.Path, DirectIoVerdictReads, DirectIoMinMeanRead >> 10);
        }
        return _reader.ReadAsync(open, offset, destination, cancellationToken);
    }

    /// <summary>
    /// The first handle-0 READ of a file (or one after the kernel forgot it): resolve the node and its
    /// version without holding the reader thread (HTTP fetches the first chunk with it here, as OPEN would have
    /// done), then install the file's shared read state; concurrent first reads agree on one.
    /// </summary>
    private async ValueTask<FuseReadResult> ReadWithoutOpenAsync(ulong nodeId, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        DatasetEntry? node = null;
        OpenFile shared;
        try
        {
            if (!_tree.TryGetNode(nodeId, out node))
            {
                node = await _tree.FindByIdAsync(nodeId, _stopping).ConfigureAwait(false);
                if (node is null)
                {
                    return Errno.ESTALE; // an id we never gave out
                }
            }
            if (node.Kind != OriginEntryKind.File)
            {
                return node.IsDirectory ? Errno.EISDIR : Errno.EINVAL;
            }
            _directoryReadAhead?.OnFirstRead(node);
            FileVersion version = await _reader.ResolveForReadAsync(_tree, node, _stopping).ConfigureAwait(false);
            shared = InstallSharedRead(node, version);
        }
        catch (Exception e)
        {
            return Fail("read", node?.Path ?? nodeId.ToString("x16", System.Globalization.CultureInfo.InvariantCulture), e);
        }
        return await _reader.ReadAsync(shared, offset, destination, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The node's shared read state for <paramref name="version"/>: the one in place if it is usable
    /// (always on an immutable mount, where the version never changes), else a new one. Only a READ
    /// that came with handle 0 gets here, so on a refresh mount (which answers OPEN itself) only after
    /// a takeover from a server that declined OPEN; there a new version replaces the state.
    /// </summary>
    private OpenFile InstallSharedRead(DatasetEntry node, FileVersion version)
    {
        OpenFile shared = node.SharedRead.GetOrInstall(
            (Immutable: _tree.Refresh is null, Node: node, Version: version),
            static (current, s) => s.Immutable || ReferenceEquals(current.Version, s.Version),
            static s => new OpenFile(s.Node, s.Version),
            out bool wasEmpty);
        if (wasEmpty)
        {
            Interlocked.Increment(ref _sharedReads);
        }
        return shared;
    }

    /// <summary>
    /// A READ on a handle this process never opened: after a takeover of the connection, files the
    /// previous process opened are still open in the kernel. READ carries the node id, so the handle
    /// is reopened here on the file's current version (READ-served, as the previous process's
    /// passthrough opens never send READ).
    /// </summary>
    private bool TryAdoptFile(ulong nodeId, ulong handle, out OpenFile open)
    {
        open = null!;
        if (!TryResolveNode(nodeId, out DatasetEntry node) || node.Kind != OriginEntryKind.File)
        {
            return false;
        }
        try
        {
            FileVersion version = _reader.ResolveForRead(_tree, node, _stopping);
            OpenState opens = node.Opens;
            lock (opens.Gate)
            {
                var adopted = new OpenFile(node, version);
                open = _files.Adopt(handle, adopted);
                if (ReferenceEquals(open, adopted))
                {
                    opens.CachedOpens++;
                }
            }
            return true;
        }
        catch (Exception e)
        {
            Fail("reopen", node.Path, e);
            return false;
        }
    }

    /// <summary>The node for an id: from memory, or (after a takeover) found again by walking the listings.</summary>
    private bool TryResolveNode(ulong nodeId, out DatasetEntry node)
    {
        if (_tree.TryGetNode(nodeId, out node))
        {
            return true;
        }
        try
        {
            DatasetEntry? found = DatasetTree.WaitForOrigin(_tree.FindByIdAsync(nodeId, _stopping));
            node = found!;
            return found is not null;
        }
        catch (Exception e)
        {
            Fail("find node", nodeId.ToString("x16", System.Globalization.CultureInfo.InvariantCulture), e);
            return false;
        }
    }

    /// <summary>
    /// FLUSH comes only for opens not answered with FOPEN_NOFLUSH: zero-message ones (or a previous
    /// server's). Under zero-message opens, ENOSYS makes the kernel stop sending it for good. The mode
    /// is set before the OPEN that chose it is answered, so no zero-message close finds it undecided.
    /// </summary>
    public Errno Flush(ulong nodeId, ulong handle) => ZeroMessageOpen ? Errno.ENOSYS : Errno.Ok;

    public void Release(ulong nodeId, ulong handle)
    {
        if (!_files.TryRemove(handle, out OpenFile open))
        {
            return;
        }
        OpenState opens = open.Entry.Opens;
        lock (opens.Gate)
        {
            if (!open.Passthrough)
            {
                opens.CachedOpens--;
                return;
            }
            // The kernel drops the inode's backing file with its last passthrough file, before it
            // sends this RELEASE; our registration goes with it.
            if (--opens.PassthroughOpens == 0)
            {
                opens.Backing?.Dispose();
                opens.Backing = null;
            }
        }
    }

    public Errno OpenDir(ulong nodeId, int flags, out FuseOpenResult result)
    {
        result = default;
        if (_zeroMessageOpenDir)
        {
            // "Nothing to open": the kernel completes this opendir(3) itself with handle 0 and its
            // default FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, and from now on opens and closes directories
            // of this connection without a word to us. READDIRs arrive with handle 0 (see ReadDir).
            return Errno.ENOSYS;
        }
        if (!TryResolveNode(nodeId, out DatasetEntry node))
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
        OpenDirectory open;
        if (handle == 0)
        {
            // A zero-message opendir (we never hand out handle 0): every directory comes with this
            // handle, so the state is the node's, never the handle's.
            Errno error = SharedListingFor(nodeId, offset, out open);
            if (!error.IsOk)
            {
                return error;
            }
        }
        else if (!_directories.TryGet(handle, out open))
        {
            // A handle from before a takeover: list the directory's current listing under it.
            if (!TryResolveNode(nodeId, out DatasetEntry directory) || !directory.IsDirectory)
            {
                return Errno.EBADF;
            }
            open = _directories.Adopt(handle, new OpenDirectory(directory, _tree.CurrentListing(directory)));
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

    /// <summary>
    /// The listing handle-0 READDIRs of <paramref name="nodeId"/> read: the directory's shared one,
    /// made by its first READDIR; concurrent first READDIRs agree on one. On an immutable mount a
    /// directory has one <see cref="DirectoryListing"/> for the mount's life, only ever appended to
    /// page by page, so cookie 3 + i names the same entry in every READDIR, whichever reader and
    /// whenever. Only after a takeover can a refresh mount see handle 0 (this process answers OPENDIR
    /// there); then a READDIR at offset 0 (a new opendir or a rewind) moves the directory to its
    /// current listing, and a pass still running elsewhere continues in the new one.
    /// </summary>
    private Errno SharedListingFor(ulong nodeId, ulong offset, out OpenDirectory open)
    {
        open = null!;
        if (!TryResolveNode(nodeId, out DatasetEntry directory))
        {
            return Errno.ESTALE;
        }
        if (!directory.IsDirectory)
        {
            return Errno.ENOTDIR;
        }
        open = directory.SharedListing.GetOrInstall(
            (Tree: _tree, Directory: directory, Offset: offset),
            static (current, s) => s.Tree.Refresh is null || s.Offset != 0 || ReferenceEquals(current.Listing, s.Tree.CurrentListing(s.Directory)),
            static s => new OpenDirectory(s.Directory, s.Tree.CurrentListing(s.Directory)),
            out bool wasEmpty);
        if (wasEmpty)
        {
            Interlocked.Increment(ref _sharedListings);
        }
        return Errno.Ok;
    }

    /// <summary>Not sent under zero-message opendirs (handle 0 never reaches the table anyway).</summary>
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

    [LoggerMessage(EventId = 3012, Level = LogLevel.Debug, Message = "Zero-message opens {State} ({Reason})")]
    private static partial void LogOpenMode(ILogger logger, string state, string reason);

    [LoggerMessage(EventId = 3014, Level = LogLevel.Debug, Message = "Zero-message opens {State}, decided by the first file opened, '{Path}' of {Size} bytes ({Reason})")]
    private static partial void LogOpenModeDecided(ILogger logger, string path, long size, string state, string reason);

    [LoggerMessage(EventId = 3015, Level = LogLevel.Information, Message = "Cold opens now use the page cache: '{Path}' was read in small pieces (a mean under {MinKiB} KiB over {Reads} READs), which FOPEN_DIRECT_IO would make a round trip each")]
    private static partial void LogColdDirectIoOff(ILogger logger, string path, int reads, int minKiB);

    [LoggerMessage(EventId = 3013, Level = LogLevel.Debug, Message = "Zero-message opendirs {State} ({Reason})")]
    private static partial void LogOpenDirMode(ILogger logger, string state, string reason);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Information, Message = "{Operation} '{Path}' failed ({Errno}): {Reason}")]
    private static partial void LogOperationFailed(ILogger logger, string operation, string path, string errno, string reason);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Warning, Message = "{Operation} '{Path}' failed unexpectedly ({Errno})")]
    private static partial void LogOperationFailedUnexpectedly(ILogger logger, string operation, string path, string errno, Exception exception);
}
