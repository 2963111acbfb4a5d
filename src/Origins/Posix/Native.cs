using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Origins.Posix;

/// <summary>
/// The few libc calls POSIX origins need that .NET does not expose: openat2 with
/// RESOLVE_BENEATH (the kernel resolves a path and refuses to leave the dataset root, with no
/// check-then-use race), statx (for the inode, which makes the version token notice a file
/// replaced by rename), readlinkat, and realpath for kernels or seccomp profiles without openat2.
/// statx is used rather than stat because its struct has one layout on every architecture
/// (struct stat differs between x86_64 and arm64). The O_* values used here are the same on
/// x86_64 and arm64 (O_DIRECTORY and O_NOFOLLOW are not, so they are avoided).
/// </summary>
internal static partial class Native
{
    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const int AT_EMPTY_PATH = 0x1000;
    /// <summary>STATX_BASIC_STATS: type, mode, nlink, uid, gid, times, ino, size, blocks.</summary>
    public const uint STATX_BASIC_STATS = 0x7ff;

    public const int ENOENT = 2;
    public const int EPERM = 1;
    public const int EXDEV = 18;
    public const int ENOSYS = 38;
    public const int EACCES = 13;
    public const int ENOTDIR = 20;
    public const int ELOOP = 40;

    /// <summary>openat2 is 437 on every architecture (syscalls added since 5.1 share numbers).</summary>
    private const long SYS_openat2 = 437;
    public const ulong O_RDONLY = 0;
    public const ulong O_NONBLOCK = 0x800;      // 04000: a fifo swapped in must not block the open
    public const ulong O_CLOEXEC = 0x80000;     // 02000000
    public const ulong O_PATH = 0x200000;       // 010000000: a handle for *at calls and statx, no I/O
    private const ulong RESOLVE_NO_MAGICLINKS = 0x02;
    private const ulong RESOLVE_BENEATH = 0x08;

    public const ushort S_IFMT = 0xF000;
    public const ushort S_IFDIR = 0x4000;
    public const ushort S_IFREG = 0x8000;
    public const ushort S_IFLNK = 0xA000;

    /// <summary>struct statx_timestamp (linux/stat.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StatxTimestamp
    {
        public long Sec;
        public uint Nsec;
        public int Reserved;
    }

    /// <summary>struct statx (linux/stat.h); 256 bytes, the tail is spare space the kernel may fill later.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 256)]
    public struct Statx
    {
        public uint Mask;
        public uint BlkSize;
        public ulong Attributes;
        public uint NLink;
        public uint Uid;
        public uint Gid;
        public ushort Mode;
        public ushort Spare0;
        public ulong Ino;
        public ulong Size;
        public ulong Blocks;
        public ulong AttributesMask;
        public StatxTimestamp ATime;
        public StatxTimestamp BTime;
        public StatxTimestamp CTime;
        public StatxTimestamp MTime;
        public uint RdevMajor;
        public uint RdevMinor;
        public uint DevMajor;
        public uint DevMinor;

        public readonly ushort FileType => (ushort)(Mode & S_IFMT);

        public readonly DateTimeOffset Modified =>
            DateTimeOffset.FromUnixTimeSeconds(MTime.Sec).AddTicks(MTime.Nsec / 100);

        /// <summary>
        /// The POSIX version token: device + inode (a file replaced by rename gets a new inode),
        /// size and mtime in nanoseconds (an in-place rewrite moves mtime).
        /// </summary>
        public readonly string VersionToken =>
            string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{DevMajor:x}.{DevMinor:x}-{Ino:x}-{Size:x}-{MTime.Sec:x}.{MTime.Nsec:x}");
    }

    /// <summary>struct open_how (linux/openat2.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    // glibc has no openat2 wrapper; syscall(2) is variadic, which on x86_64 and arm64 Linux is
    // the ordinary register convention for integer arguments, so a fixed prototype is safe.
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial long SyscallOpenat2(long number, SafeFileHandle dirfd, string path, ref OpenHow how, nuint size);

    // open(2) is variadic too (mode), and mode is only read with O_CREAT.
    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenRaw(string path, int flags);

    [LibraryImport("libc", EntryPoint = "readlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint ReadLinkAtRaw(SafeFileHandle dirfd, string path, byte[] buffer, nuint size);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatxAt(SafeFileHandle dirfd, string path, int flags, uint mask, out Statx buf);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatxPath(int dirfd, string path, int flags, uint mask, out Statx buf);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatxFd(SafeFileHandle fd, string path, int flags, uint mask, out Statx buf);

    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPathRaw(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint ptr);

    /// <summary>statx on a path; returns 0 or the errno.</summary>
    public static int TryStat(string path, bool followLinks, out Statx stx)
    {
        int rc = StatxPath(AT_FDCWD, path, followLinks ? 0 : AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, out stx);
        return rc == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>statx on an open file (AT_EMPTY_PATH); returns 0 or the errno.</summary>
    public static int TryStat(SafeFileHandle handle, out Statx stx)
    {
        int rc = StatxFd(handle, "", AT_EMPTY_PATH, STATX_BASIC_STATS, out stx);
        return rc == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>
    /// openat2(dirfd, path, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): symlinks are
    /// followed only while they stay under dirfd; leaving it is EXDEV. Returns 0 or the errno.
    /// </summary>
    public static int TryOpenBeneath(SafeFileHandle dir, string path, ulong flags, out SafeFileHandle handle)
    {
        var how = new OpenHow { Flags = flags, Mode = 0, Resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
        long fd = SyscallOpenat2(SYS_openat2, dir, path, ref how, (nuint)Marshal.SizeOf<OpenHow>());
        if (fd < 0)
        {
            handle = new SafeFileHandle();
            return Marshal.GetLastPInvokeError();
        }
        handle = new SafeFileHandle((nint)fd, ownsHandle: true);
        return 0;
    }

    /// <summary>open(2) of an absolute path; returns 0 or the errno.</summary>
    public static int TryOpen(string path, ulong flags, out SafeFileHandle handle)
    {
        int fd = OpenRaw(path, (int)flags);
        if (fd < 0)
        {
            handle = new SafeFileHandle();
            return Marshal.GetLastPInvokeError();
        }
        handle = new SafeFileHandle(fd, ownsHandle: true);
        return 0;
    }

    /// <summary>statx of a name relative to a directory handle; returns 0 or the errno.</summary>
    public static int TryStatAt(SafeFileHandle dir, string name, bool followLinks, out Statx stx)
    {
        int rc = StatxAt(dir, name, followLinks ? 0 : AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, out stx);
        return rc == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>readlinkat(2), growing the buffer until the target fits; returns 0 or the errno.</summary>
    public static int TryReadLinkAt(SafeFileHandle dir, string name, out string target)
    {
        for (int size = 256; ; size *= 4)
        {
            byte[] buffer = new byte[size];
            nint n = ReadLinkAtRaw(dir, name, buffer, (nuint)size);
            if (n < 0)
            {
                target = "";
                return Marshal.GetLastPInvokeError();
            }
            if (n < size || size >= 1 << 20)
            {
                target = System.Text.Encoding.UTF8.GetString(buffer, 0, (int)n);
                return 0;
            }
        }
    }

    /// <summary>realpath(3): every symlink and "." / ".." resolved; returns 0 or the errno.</summary>
    public static int TryRealPath(string path, out string resolved)
    {
        nint p = RealPathRaw(path, 0);
        if (p == 0)
        {
            resolved = "";
            return Marshal.GetLastPInvokeError();
        }
        try
        {
            resolved = Marshal.PtrToStringUTF8(p)!;
            return 0;
        }
        finally
        {
            Free(p);
        }
    }
}
