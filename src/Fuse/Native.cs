using System.Runtime.InteropServices;

namespace CsiCache.Fuse;

/// <summary>
/// The libc calls the FUSE server needs, and nothing else. Each returns -1 (or a negative count) on
/// failure; read errno with <see cref="Marshal.GetLastPInvokeError"/> right after the call.
/// </summary>
internal static unsafe partial class Native
{
    // open(2) flags; same values on x86-64 and arm64.
    public const int O_RDONLY = 0;
    public const int O_RDWR = 2;
    public const int O_CLOEXEC = 0x80000;

    // mount(2) flags.
    public const ulong MS_RDONLY = 1;
    public const ulong MS_NOSUID = 2;
    public const ulong MS_NODEV = 4;

    // umount2(2) flags.
    public const int MNT_FORCE = 1;
    public const int MNT_DETACH = 2;

    // errno values the session acts on.
    public const int EINTR = 4;
    public const int ENOENT = 2;
    public const int EAGAIN = 11;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int EBUSY = 16;
    public const int ENOTCONN = 107;

    // _IOR(229, 0, uint32_t), _IOW(229, 1, struct fuse_backing_map), _IOW(229, 2, uint32_t):
    // dir << 30 | size << 16 | type << 8 | nr, with type = FUSE_DEV_IOC_MAGIC (229).
    public const uint FUSE_DEV_IOC_CLONE = (2u << 30) | (4u << 16) | (229u << 8) | 0;
    public const uint FUSE_DEV_IOC_BACKING_OPEN = (1u << 30) | (16u << 16) | (229u << 8) | 1;
    public const uint FUSE_DEV_IOC_BACKING_CLOSE = (1u << 30) | (4u << 16) | (229u << 8) | 2;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Mount(string source, string target, string fileSystemType, ulong flags, string data);

    [LibraryImport("libc", EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Umount2(string target, int flags);

    /// <summary>ioctl(2) with a pointer argument (all the FUSE device ioctls take one).</summary>
    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, void* argument);

    /// <summary>statfs(2); the buffer only has to be large enough (struct statfs is 120 bytes on 64-bit).</summary>
    [LibraryImport("libc", EntryPoint = "statfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int StatFs(string path, byte* buffer);

    [LibraryImport("libc", EntryPoint = "strerror")]
    private static partial nint StrErrorNative(int errno);

    public static string StrError(int errno) =>
        Marshal.PtrToStringUTF8(StrErrorNative(errno)) ?? "errno " + errno.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
