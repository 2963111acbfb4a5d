using System.Globalization;
using System.Runtime.InteropServices;

namespace CsiCache.Fuse;

/// <summary>mount(2) and umount2(2) for FUSE, and the repair of mounts whose server died.</summary>
public static unsafe class FuseMount
{
    /// <summary>
    /// Mounts a FUSE filesystem served through <paramref name="deviceFd"/> at
    /// <paramref name="mountPoint"/>. The kernel queues INIT on the device as part of this call.
    /// </summary>
    internal static void Mount(string mountPoint, int deviceFd, FuseOptions options)
    {
        var data = new System.Text.StringBuilder();
        data.Append(CultureInfo.InvariantCulture, $"fd={deviceFd},rootmode=40000,user_id={options.UserId},group_id={options.GroupId}");
        if (options.AllowOther)
        {
            data.Append(",allow_other");
        }
        if (options.DefaultPermissions)
        {
            data.Append(",default_permissions");
        }
        data.Append(CultureInfo.InvariantCulture, $",max_read={options.MaxRead}");

        ulong flags = Native.MS_NOSUID | Native.MS_NODEV;
        if (options.ReadOnly)
        {
            flags |= Native.MS_RDONLY;
        }

        string fileSystemType = "fuse." + options.Subtype;
        if (Native.Mount(options.Source, mountPoint, fileSystemType, flags, data.ToString()) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new FuseNativeException("mount", errno, $"{fileSystemType} at {mountPoint}");
        }
    }

    /// <summary>
    /// Unmounts <paramref name="mountPoint"/>; when it is busy, detaches it instead (MNT_DETACH: it
    /// vanishes from the namespace now and goes away when its last user does). Returns false when
    /// nothing was mounted there.
    /// </summary>
    public static bool Unmount(string mountPoint)
    {
        if (Native.Umount2(mountPoint, 0) == 0)
        {
            return true;
        }
        int errno = Marshal.GetLastPInvokeError();
        if (errno == Native.EINVAL || errno == Native.ENOENT)
        {
            return false;
        }
        if (Native.Umount2(mountPoint, Native.MNT_DETACH) == 0)
        {
            return true;
        }
        int detachErrno = Marshal.GetLastPInvokeError();
        if (detachErrno == Native.EINVAL)
        {
            return false;
        }
        throw new FuseNativeException("umount2", detachErrno, $"{mountPoint} (plain umount said {Native.StrError(errno)})");
    }

    /// <summary>
    /// Removes FUSE mounts at <paramref name="mountPoint"/> whose server is gone: the kernel then
    /// answers every access with ENOTCONN ("Transport endpoint is not connected"), which also
    /// blocks mounting there again. A FUSE mount whose server still answers is left alone. Returns
    /// the number of mounts removed.
    /// </summary>
    /// <remarks>
    /// The probe is statfs(2), which FUSE always forwards to the server (nothing is cached), so a
    /// dead server shows at once. A server that is alive but hung would block the probe; this is
    /// for the crash case, e.g. a node plugin restarting.
    /// </remarks>
    public static int CleanupStale(string mountPoint)
    {
        string path = MountInfo.Normalize(mountPoint);
        int removed = 0;
        // Mounts can stack; stop at the first live or non-FUSE one (and never loop for ever).
        for (int i = 0; i < 16; i++)
        {
            MountInfoEntry? top = MountInfo.Find(path);
            if (top is null || !top.IsFuse || IsAlive(path))
            {
                break;
            }
            if (!Unmount(path))
            {
                break;
            }
            removed++;
        }
        return removed;
    }

    /// <summary>True when a statfs through the mount gets an answer (or fails for a reason other than a dead connection).</summary>
    internal static bool IsAlive(string path)
    {
        byte* buffer = stackalloc byte[512];
        if (Native.StatFs(path, buffer) == 0)
        {
            return true;
        }
        int errno = Marshal.GetLastPInvokeError();
        const int ECONNABORTED = 103;
        return errno != Native.ENOTCONN && errno != ECONNABORTED;
    }

    /// <summary>
    /// Aborts a FUSE connection through fusectl (/sys/fs/fuse/connections/&lt;dev&gt;/abort) so its
    /// readers see ENODEV and its users EIO/ENOTCONN. False when fusectl is not mounted.
    /// </summary>
    internal static bool TryAbortConnection(uint deviceMinor)
    {
        string abort = $"/sys/fs/fuse/connections/{deviceMinor.ToString(CultureInfo.InvariantCulture)}/abort";
        if (!File.Exists(abort))
        {
            return false;
        }
        try
        {
            File.WriteAllText(abort, "1");
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Raises read_ahead_kb of the mount's backing device (named "0:minor" for FUSE).</summary>
    internal static bool TrySetReadAhead(MountInfoEntry mount, int kilobytes)
    {
        string path = $"/sys/class/bdi/{mount.DeviceMajor.ToString(CultureInfo.InvariantCulture)}:{mount.DeviceMinor.ToString(CultureInfo.InvariantCulture)}/read_ahead_kb";
        try
        {
            File.WriteAllText(path, kilobytes.ToString(CultureInfo.InvariantCulture));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
