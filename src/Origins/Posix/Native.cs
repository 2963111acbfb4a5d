using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Origins.Posix;

/// <summary>
/// The few libc calls POSIX origins need that .NET does not expose: statx (for the inode, which
/// makes the version token notice a file replaced by rename) and realpath (to keep symlinks inside
/// the dataset root). statx is used rather than stat because its struct has one layout on every
/// architecture (struct stat differs between x86_64 and arm64).
/// </summary>
internal static partial class Native
{
    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const int AT_EMPTY_PATH = 0x1000;
    /// <summary>STATX_BASIC_STATS: type, mode, nlink, uid, gid, times, ino, size, blocks.</summary>
    public const uint STATX_BASIC_STATS = 0x7ff;

    public const int ENOENT = 2;
    public const int EACCES = 13;
    public const int ENOTDIR = 20;
    public const int ELOOP = 40;

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
