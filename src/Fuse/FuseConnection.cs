using System.Runtime.InteropServices;
using CsiCache.Fuse.Passthrough;

namespace CsiCache.Fuse;

/// <summary>
/// What INIT negotiated with the kernel, handed to <see cref="IFuseFileSystem.Init"/>, and the door
/// to passthrough backing files.
/// </summary>
public sealed class FuseConnection
{
    private readonly IBackingDevice? _device;

    internal FuseConnection(uint protocolMinor, int maxRead, bool passthroughEnabled, IBackingDevice? device, bool noOpenSupported = false, bool noOpendirSupported = false, bool directIoMmapAllowed = false)
    {
        DirectIoMmapAllowed = directIoMmapAllowed;
        ProtocolMinor = protocolMinor;
        MaxRead = maxRead;
        PassthroughEnabled = passthroughEnabled && device is not null;
        NoOpenSupported = noOpenSupported;
        NoOpendirSupported = noOpendirSupported;
        _device = device;
    }

    /// <summary>The protocol minor in use: the lower of the kernel's and ours.</summary>
    public uint ProtocolMinor { get; }

    /// <summary>The largest READ the kernel will send, in bytes.</summary>
    public int MaxRead { get; }

    /// <summary>
    /// True when the kernel accepted FUSE_PASSTHROUGH and there is a device to register backing files
    /// with. When false, <see cref="TryOpenBackingFile"/> always fails and opens must be served by READ.
    /// </summary>
    public bool PassthroughEnabled { get; }

    /// <summary>
    /// True when the kernel granted FUSE_DIRECT_IO_ALLOW_MMAP (6.6): a file opened with
    /// <see cref="FuseOpenOptions.DirectIo"/> can still be mmap'd shared. Without it such an mmap
    /// fails with ENODEV, so a filesystem should hand out DirectIo opens only when this is true.
    /// </summary>
    public bool DirectIoMmapAllowed { get; }

    /// <summary>
    /// True when the kernel offered FUSE_NO_OPEN_SUPPORT (7.23) in INIT: it then treats ENOSYS from
    /// <see cref="IFuseFileSystem.Open"/> as "this server keeps no per-open state". That open, and
    /// every later open of a regular file on this connection, succeeds inside the kernel without a
    /// request: no OPEN and no RELEASE reach the server again, reads carry handle 0, and the kernel
    /// keeps the file's page cache across opens (FOPEN_KEEP_CACHE is its default for such opens).
    /// When false, ENOSYS from OPEN fails the user's open(2) instead. A kernel capability only: it
    /// is not echoed in the INIT reply, and it is false for a connection taken over after INIT
    /// (what that kernel offered is not known), which is always safe.
    /// </summary>
    public bool NoOpenSupported { get; }

    /// <summary>
    /// True when the kernel offered FUSE_NO_OPENDIR_SUPPORT (7.29) in INIT: the same bargain for
    /// directories. ENOSYS from <see cref="IFuseFileSystem.OpenDir"/> makes the kernel remember that
    /// this server keeps no per-opendir state: that opendir(3) and every later one on this connection
    /// completes inside the kernel, no OPENDIR or RELEASEDIR is sent again, READDIR and READDIRPLUS
    /// carry handle 0 (serve them by node id), and the open gets the kernel's default flags
    /// FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR: once a directory has been read to its end, later listings
    /// of it come from the kernel's own cache of the entries, with no request at all (until the
    /// inode is evicted or its mtime changes). When false, ENOSYS fails the opendir(3) instead. Like
    /// <see cref="NoOpenSupported"/>, a capability only: never echoed, false after a takeover.
    /// </summary>
    public bool NoOpendirSupported { get; }

    /// <summary>
    /// Registers an open, readable file as a passthrough backing file. Returns false (with the errno)
    /// when passthrough is off or the kernel refuses (e.g. EPERM without CAP_SYS_ADMIN, or a backing
    /// file on a filesystem that is itself too deeply stacked): the caller then serves READ itself.
    /// </summary>
    public bool TryOpenBackingFile(SafeHandle file, out BackingId? backingId, out Errno error)
    {
        backingId = null;
        if (!PassthroughEnabled || _device is null)
        {
            error = Errno.EOPNOTSUPP;
            return false;
        }

        bool added = false;
        try
        {
            file.DangerousAddRef(ref added);
            int id = _device.OpenBacking((int)file.DangerousGetHandle());
            backingId = new BackingId(_device, id);
            error = Errno.Ok;
            return true;
        }
        catch (FuseNativeException e)
        {
            error = new Errno(e.Errno);
            return false;
        }
        finally
        {
            if (added)
            {
                file.DangerousRelease();
            }
        }
    }
}
