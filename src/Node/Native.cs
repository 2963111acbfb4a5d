using System.Runtime.InteropServices;

namespace CsiCache.Node;

/// <summary>The few libc calls the node plugin needs; errno is read right after each call.</summary>
internal static partial class Native
{
    public const ulong MS_RDONLY = 0x1;
    public const ulong MS_NOSUID = 0x2;
    public const ulong MS_NODEV = 0x4;
    public const ulong MS_NOEXEC = 0x8;
    public const ulong MS_REMOUNT = 0x20;
    public const ulong MS_BIND = 0x1000;

    public const int MNT_FORCE = 0x1;
    public const int MNT_DETACH = 0x2;

    public const int EINVAL = 22;
    public const int ENOENT = 2;
    public const int EBUSY = 16;

    [LibraryImport("libc", EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Mount(string source, string target, string? fileSystemType, ulong flags, string? data);

    [LibraryImport("libc", EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Umount2(string target, int flags);

    [LibraryImport("libc", EntryPoint = "statvfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int StatVfs(string path, out StatVfsBuffer buffer);

    /// <summary>glibc's struct statvfs on 64-bit Linux: eleven 8-byte fields and six spare ints.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StatVfsBuffer
    {
        public ulong BlockSize;
        public ulong FragmentSize;
        public ulong Blocks;
        public ulong BlocksFree;
        public ulong BlocksAvailable;
        public ulong Files;
        public ulong FilesFree;
        public ulong FilesAvailable;
        public ulong FileSystemId;
        public ulong Flags;
        public ulong NameMax;
        private ulong _spare0;
        private ulong _spare1;
        private ulong _spare2;
    }

    [LibraryImport("libc", EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Stat(string path, byte* buffer);

    /// <summary>
    /// Bytes actually allocated to a (sparse) file: st_blocks × 512. st_blocks sits at byte 64
    /// of struct stat on both x86_64 and arm64; 256 bytes covers the whole struct on either.
    /// </summary>
    public static unsafe long AllocatedBytes(string path)
    {
        var buffer = stackalloc byte[256];
        if (Stat(path, buffer) != 0)
        {
            return 0;
        }

        return *(long*)(buffer + 64) * 512;
    }

    public static string ErrorText(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
