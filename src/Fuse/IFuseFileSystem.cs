namespace CsiCache.Fuse;

/// <summary>
/// The seam between the FUSE protocol server and a filesystem: inode-based, like go-fuse's
/// <c>RawFileSystem</c> and fuser's <c>Filesystem</c>. It knows nothing of caches or CSI, and the
/// protocol side knows nothing of what the filesystem serves.
/// </summary>
/// <remarks>
/// <para><b>Node ids and handles</b> are the filesystem's: node id 1 is the root; every other id is
/// whatever <see cref="Lookup"/> (or a READDIRPLUS entry) returned, and every handle whatever
/// <see cref="Open"/>/<see cref="OpenDir"/> returned. The server passes them through untouched and
/// keeps no table of its own, so a restarted server can take over a live /dev/fuse descriptor if
/// the filesystem can recognise its old ids.</para>
/// <para><b>Lookup counts</b>: each successful <see cref="Lookup"/> and each READDIRPLUS entry
/// accepted by <see cref="DirectoryWriter.TryAdd"/> (see there) adds one reference to the node;
/// <see cref="Forget"/> removes <c>lookups</c> of them. A node may be dropped at zero.</para>
/// <para><b>Threads</b>: calls arrive concurrently from several reader threads, including for the
/// same node or handle. Everything except <see cref="ReadAsync"/> is synchronous and runs on a reader
/// thread: it should be quick (metadata from memory); a call that must wait on the network holds
/// that reader, and the session has several so the mount stays responsive. Reads are asynchronous
/// because they are the ones that wait on an origin.</para>
/// <para><b>Errors</b>: return an <see cref="Errno"/>; an exception that escapes is logged and
/// answered EIO. Write-type requests never reach this interface: they are answered EROFS.</para>
/// </remarks>
public interface IFuseFileSystem
{
    /// <summary>Called once INIT is negotiated, before its reply is sent (so before any other call).</summary>
    void Init(FuseConnection connection)
    {
    }

    /// <summary>Called once when the session ends (DESTROY, unmount, or the device closing).</summary>
    void Destroy()
    {
    }

    /// <summary>
    /// Resolves <paramref name="name"/> in directory <paramref name="parent"/>. On success the node's
    /// lookup count goes up by one. On <see cref="Errno.ENOENT"/>, a positive
    /// <see cref="FuseEntry.EntryTimeout"/> in <paramref name="entry"/> lets the kernel remember the
    /// miss for that long (a negative dentry); leave it zero to have it ask again each time.
    /// </summary>
    Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseEntry entry);

    /// <summary>The kernel dropped <paramref name="lookups"/> references to the node. Never answered.</summary>
    void Forget(ulong nodeId, ulong lookups);

    /// <summary>Current attributes of a node and how long the kernel may cache them.</summary>
    Errno GetAttr(ulong nodeId, out FuseAttributes attributes, out TimeSpan timeout);

    /// <summary>Writes a symlink's target into <paramref name="target"/> (up to 4096 bytes, no NUL).</summary>
    Errno ReadLink(ulong nodeId, Span<byte> target, out int length);

    /// <summary>
    /// Opens a regular file. <paramref name="flags"/> are the open(2) flags. Set
    /// <see cref="FuseOpenOptions.KeepCache"/> for immutable data. For passthrough, set
    /// <see cref="FuseOpenOptions.Passthrough"/> and <see cref="FuseOpenResult.BackingId"/> from a
    /// <see cref="Passthrough.BackingId"/> made through <see cref="FuseConnection.TryOpenBackingFile"/>.
    /// </summary>
    /// <remarks>
    /// <b>Zero-message opens</b>: when <see cref="FuseConnection.NoOpenSupported"/>, returning
    /// <see cref="Errno.ENOSYS"/> makes the kernel open this file, and every regular file after it on
    /// this connection, by itself: no more OPEN or RELEASE, reads with handle 0 (serve them by node
    /// id), pages kept across opens. It cannot be undone for the connection's life, and passthrough
    /// needs OPEN, so only a filesystem that never needs either may do it. Answer
    /// <see cref="Flush"/> with ENOSYS too, or every close sends a FLUSH. Without
    /// <see cref="FuseConnection.NoOpenSupported"/>, ENOSYS simply fails the open.
    /// </remarks>
    Errno Open(ulong nodeId, int flags, out FuseOpenResult result);

    /// <summary>
    /// Reads up to <c>destination.Length</c> bytes at <paramref name="offset"/> into
    /// <paramref name="destination"/>; fewer bytes only at end of file. Complete synchronously when
    /// the bytes are at hand (no allocation); otherwise the reader thread moves on to the next
    /// request and the reply is sent when the task completes. <paramref name="destination"/> is a
    /// pooled buffer: do not touch it after the task completes. <paramref name="cancellationToken"/>
    /// fires when the session stops (FUSE_INTERRUPT is not forwarded: the kernel still waits for
    /// the reply).
    /// </summary>
    ValueTask<FuseReadResult> ReadAsync(ulong nodeId, ulong handle, long offset, Memory<byte> destination, CancellationToken cancellationToken);

    /// <summary>
    /// close(2) of one descriptor of an open file; nothing to do for read-only data. Not sent for
    /// opens answered with <see cref="FuseOpenOptions.NoFlush"/>. <see cref="Errno.ENOSYS"/> makes the
    /// kernel stop sending FLUSH on this connection (close(2) still succeeds): the way to silence it
    /// for zero-message opens, which carry no open flags.
    /// </summary>
    Errno Flush(ulong nodeId, ulong handle) => Errno.Ok;

    /// <summary>The last descriptor of an open file is gone; <paramref name="handle"/> is dead after this.</summary>
    void Release(ulong nodeId, ulong handle);

    /// <summary>Opens a directory for listing. <see cref="FuseOpenOptions.CacheDir"/> lets the kernel cache the listing.</summary>
    /// <remarks>
    /// <b>Zero-message opendirs</b>: when <see cref="FuseConnection.NoOpendirSupported"/>, returning
    /// <see cref="Errno.ENOSYS"/> makes the kernel open this directory, and every directory after it
    /// on this connection, by itself: no more OPENDIR or RELEASEDIR, <see cref="ReadDir"/> with handle
    /// 0 (serve it by node id; one directory's readdirs may run concurrently and must continue from
    /// any cookie), and FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, so the kernel caches every complete
    /// listing. Only for a filesystem whose listings never change. Without
    /// <see cref="FuseConnection.NoOpendirSupported"/>, ENOSYS simply fails the opendir.
    /// </remarks>
    Errno OpenDir(ulong nodeId, int flags, out FuseOpenResult result);

    /// <summary>
    /// Lists directory entries starting at cookie <paramref name="offset"/> (0 = from the start)
    /// into <paramref name="writer"/> until it reports full or the directory ends. Return
    /// <see cref="Errno.Ok"/> with nothing written to signal the end.
    /// </summary>
    Errno ReadDir(ulong nodeId, ulong handle, ulong offset, ref DirectoryWriter writer);

    /// <summary>A directory handle is closed.</summary>
    void ReleaseDir(ulong nodeId, ulong handle);

    /// <summary>statfs(2). The default reports an empty filesystem with 4 KiB blocks and 255-byte names.</summary>
    Errno StatFs(ulong nodeId, out FuseStatFs stats)
    {
        stats = new FuseStatFs { BlockSize = 4096, FragmentSize = 4096, NameLength = 255 };
        return Errno.Ok;
    }

    /// <summary>
    /// access(2). Rarely sent: with <c>default_permissions</c> the kernel checks permissions from the
    /// attributes itself. <paramref name="mask"/> is R_OK=4 | W_OK=2 | X_OK=1, or 0 for F_OK.
    /// </summary>
    Errno Access(ulong nodeId, int mask) => Errno.Ok;
}
