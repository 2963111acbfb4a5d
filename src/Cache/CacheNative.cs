using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cache;

/// <summary>The few Linux calls the BCL does not offer: syncfs, fsync of a folder, fadvise.</summary>
internal static partial class CacheNative
{
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000;
    private const int OCloexec = 0x80000;
    private const int OWrOnly = 1;
    private const int OCreat = 0x40;
    private const int OExcl = 0x80;
    private const int ODirect = 0x4000;
    private const int FadvWillNeed = 3;

    public static int OpenDirectory(string path) => Open(path, ORdOnly | ODirectory | OCloexec);

    /// <summary>A new file for O_DIRECT writes, mode 0644; -1 with errno on failure.</summary>
    public static int CreateDirect(string path) => Open(path, OWrOnly | OCreat | OExcl | ODirect | OCloexec, 0x1a4);

    /// <summary>Starts reading the whole file into the page cache in the background; 0 or an errno (not -1/errno: fadvise returns it).</summary>
    public static int WillNeed(SafeFileHandle file) => PosixFadvise(file, 0, 0, FadvWillNeed);

    [LibraryImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    public static partial int SyncFs(SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode = 0);

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(SafeFileHandle fd, long offset, long length, int advice);
}
