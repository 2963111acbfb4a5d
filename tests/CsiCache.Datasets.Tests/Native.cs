using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Datasets.Tests;

/// <summary>The few syscalls the tests need to make reads reach the FUSE server instead of the page cache.</summary>
internal static partial class Native
{
    private const int PosixFadvDontNeed = 4;

    /// <summary>Drops the file's pages from the page cache, so the next read goes to the FUSE server.</summary>
    public static void DropPageCache(string path)
    {
        using SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        int rc = PosixFadvise(handle, 0, 0, PosixFadvDontNeed);
        if (rc != 0)
        {
            throw new IOException($"posix_fadvise({path}) failed: {rc}");
        }
    }

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(SafeFileHandle fd, long offset, long length, int advice);
}
