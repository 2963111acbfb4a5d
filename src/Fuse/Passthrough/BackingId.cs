namespace CsiCache.Fuse.Passthrough;

/// <summary>
/// A backing file registered with the kernel (FUSE_DEV_IOC_BACKING_OPEN, 7.40) so that opens
/// answered with <see cref="FuseOpenOptions.Passthrough"/> and <see cref="Id"/> read it inside the
/// kernel without a READ request. Disposing unregisters it (FUSE_DEV_IOC_BACKING_CLOSE).
/// </summary>
/// <remarks>
/// The kernel takes its own reference to the file, so the caller may close its descriptor once
/// this exists. Files already open keep their backing file after <see cref="Dispose"/>; only new
/// opens with this id would fail. The kernel refuses two different backing ids for concurrent
/// opens of the same inode (EBUSY), so keep one <see cref="BackingId"/> per inode, not per open.
/// Holds the device weakly in spirit: once the session is gone, Dispose does nothing.
/// </remarks>
public sealed class BackingId : IDisposable
{
    private readonly IBackingDevice _device;
    private int _disposed;

    internal BackingId(IBackingDevice device, int id)
    {
        _device = device;
        Id = id;
    }

    /// <summary>The id to put in <see cref="FuseOpenResult.BackingId"/>.</summary>
    public int Id { get; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _device.CloseBacking(Id);
        }
    }
}

/// <summary>The device side of passthrough: the session's /dev/fuse descriptor, or a fake in tests.</summary>
internal interface IBackingDevice
{
    /// <summary>Registers <paramref name="fd"/>; returns the backing id or throws <see cref="FuseNativeException"/>.</summary>
    int OpenBacking(int fd);

    /// <summary>Unregisters an id; errors are ignored (the connection may already be gone).</summary>
    void CloseBacking(int id);
}
