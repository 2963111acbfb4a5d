using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cache;

/// <summary>The few Linux calls the BCL does not offer: syncfs, fsync of a folder, fadvise, fallocate, SEEK_DATA/SEEK_HOLE, a bare open, getrlimit.</summary>
internal static partial class CacheNative
{
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000;
    private const int OCloexec = 0x80000;
    private const int OWrOnly = 1;
    private const int OCreat = 0x40;
    private const int ODirect = 0x4000;
    private const int FadvWillNeed = 3;
    private const int FallocKeepSize = 1;
    private const int FallocPunchHole = 2;
    private const int SeekData = 3;
    private const int SeekHole = 4;

    public static int OpenDirectory(string path) => Open(path, ORdOnly | ODirectory | OCloexec);

    /// <summary>An object file opened (created if new, mode 0644) for writing chunks in place, with or without O_DIRECT; -1 with errno on failure.</summary>
    public static int OpenForWrite(string path, bool direct) => Open(path, OWrOnly | OCreat | OCloexec | (direct ? ODirect : 0), 0x1a4);

    /// <summary>An existing file opened read-only: one syscall, where File.OpenHandle adds an fstat and two flocks; -1 with errno on failure.</summary>
    public static int OpenReadOnly(string path) => Open(path, ORdOnly | OCloexec);

    /// <summary>An existing object file opened for writing (never created); -1 with errno on failure.</summary>
    public static int OpenExistingForWrite(string path) => Open(path, OWrOnly | OCloexec);

    /// <summary>Starts reading a range of the file into the page cache in the background; 0 or an errno (not -1/errno: fadvise returns it).</summary>
    public static int WillNeed(SafeFileHandle file, long offset, long length) => PosixFadvise(file, offset, length, FadvWillNeed);

    /// <summary>Frees a range of a file (it reads as zeros, and as a hole to SEEK_DATA); 0 or -1 with errno.</summary>
    public static int PunchHole(SafeFileHandle file, long offset, long length) => Fallocate(file, FallocPunchHole | FallocKeepSize, offset, length);

    /// <summary>The next offset at or after <paramref name="offset"/> that holds data; -1 with errno ENXIO when none does.</summary>
    public static long NextData(SafeFileHandle file, long offset) => Lseek(file, offset, SeekData);

    /// <summary>The next hole at or after <paramref name="offset"/> (the end of the file counts as one).</summary>
    public static long NextHole(SafeFileHandle file, long offset) => Lseek(file, offset, SeekHole);

    /// <summary>The process's soft limit on open fds (RLIMIT_NOFILE); null when it cannot be read.</summary>
    public static unsafe long? OpenFileLimit()
    {
        ulong* limits = stackalloc ulong[2]; // struct rlimit { rlim_cur, rlim_max }
        return GetRlimit(7 /* RLIMIT_NOFILE */, limits) == 0 ? (long)Math.Min(limits[0], long.MaxValue) : null;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit")]
    private static unsafe partial int GetRlimit(int resource, ulong* limits);

    [LibraryImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    public static partial int SyncFs(SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode = 0);

    [LibraryImport("libc", EntryPoint = "fallocate64", SetLastError = true)]
    private static partial int Fallocate(SafeFileHandle fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "lseek64", SetLastError = true)]
    private static partial long Lseek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(SafeFileHandle fd, long offset, long length, int advice);
}
