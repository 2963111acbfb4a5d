using System.Runtime.InteropServices;
using CsiCache.Fuse.Passthrough;
using CsiCache.Fuse.Protocol;

namespace CsiCache.Fuse;

/// <summary>
/// One /dev/fuse descriptor (the mount's own or a FUSE_DEV_IOC_CLONE of it). A SafeHandle so that
/// closing it while a reader or a late READ reply still uses it waits for them instead of letting
/// the number be reused under them.
/// </summary>
internal sealed unsafe class FuseDevice : SafeHandle, IFuseReplySink, IBackingDevice
{
    private readonly Action<string>? _log;

    public FuseDevice(int fd, Action<string>? log)
        : base(-1, ownsHandle: true)
    {
        SetHandle(fd);
        _log = log;
    }

    public override bool IsInvalid => handle < 0;

    public int Fd => (int)handle;

    /// <summary>Opens /dev/fuse afresh.</summary>
    public static FuseDevice Open(Action<string>? log)
    {
        int fd = Native.Open("/dev/fuse", Native.O_RDWR | Native.O_CLOEXEC);
        if (fd < 0)
        {
            throw new FuseNativeException("open /dev/fuse", Marshal.GetLastPInvokeError());
        }
        return new FuseDevice(fd, log);
    }

    /// <summary>
    /// A new descriptor attached to the same connection, with its own request queue for replies: the
    /// kernel matches a reply only against requests read from the descriptor it is written to.
    /// </summary>
    public FuseDevice Clone()
    {
        FuseDevice clone = Open(_log);
        int source = Fd;
        if (Native.Ioctl(clone.Fd, Native.FUSE_DEV_IOC_CLONE, &source) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            clone.Dispose();
            throw new FuseNativeException("ioctl FUSE_DEV_IOC_CLONE", errno);
        }
        return clone;
    }

    /// <summary>Reads one request; returns its length, or -errno.</summary>
    public int ReadRequest(Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            nint n = Native.Read(Fd, p, buffer.Length);
            return n >= 0 ? (int)n : -Marshal.GetLastPInvokeError();
        }
    }

    public void Send(ReadOnlySpan<byte> reply)
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            return; // the session is gone; so is the request this answered
        }

        try
        {
            fixed (byte* p = reply)
            {
                if (Native.Write(Fd, p, reply.Length) < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    // ENOENT: the request was interrupted and already completed; ENODEV: unmounted.
                    if (errno != Native.ENOENT && errno != Native.ENODEV)
                    {
                        _log?.Invoke($"write to /dev/fuse failed: {Native.StrError(errno)}");
                    }
                }
            }
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    public int OpenBacking(int fd)
    {
        var map = new FuseBackingMap { Fd = fd };
        int id = Native.Ioctl(Fd, Native.FUSE_DEV_IOC_BACKING_OPEN, &map);
        if (id < 0)
        {
            throw new FuseNativeException("ioctl FUSE_DEV_IOC_BACKING_OPEN", Marshal.GetLastPInvokeError());
        }
        return id;
    }

    public void CloseBacking(int id)
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            uint value = (uint)id;
            _ = Native.Ioctl(Fd, Native.FUSE_DEV_IOC_BACKING_CLOSE, &value);
        }
        catch (ObjectDisposedException)
        {
            // Closing the device dropped every backing id with the connection.
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    protected override bool ReleaseHandle() => Native.Close((int)handle) == 0;
}
