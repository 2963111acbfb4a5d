using System.Runtime.InteropServices;

namespace CsiCache.Cli.Hosting;

/// <summary>
/// Raises the process's open-file limit before anything opens files. The chunk cache keeps an fd
/// on each idle cached object (up to 16,384, and half of what this limit leaves): after the
/// kernel drops its caches, reopening an object file reads the cache's folder and inode from disk
/// again. A daemon serving a data set of small files wants one fd per file, as nginx or a
/// database would; the default of 1,024 (or a login's 20,000) is for shells.
/// </summary>
internal static partial class OpenFileLimit
{
    private const int RlimitNofile = 7;

    /// <summary>The limit asked for: the kernel's usual fs.nr_open.</summary>
    private const ulong Wanted = 1 << 20;

    /// <summary>
    /// Soft and hard limit up to <see cref="Wanted"/> where the process may (root, or
    /// CAP_SYS_RESOURCE); otherwise the soft limit up to the hard one. Never lowers either.
    /// Returns the soft limit in force afterwards (0 when it cannot be read).
    /// </summary>
    public static ulong Raise()
    {
        if (GetRlimit(RlimitNofile, out Limits current) != 0)
        {
            return 0;
        }
        if (current.Soft >= Wanted)
        {
            return current.Soft;
        }
        var both = new Limits { Soft = Wanted, Hard = Math.Max(Wanted, current.Hard) };
        if (SetRlimit(RlimitNofile, in both) == 0)
        {
            return Wanted;
        }
        var soft = new Limits { Soft = current.Hard, Hard = current.Hard };
        return current.Hard > current.Soft && SetRlimit(RlimitNofile, in soft) == 0 ? current.Hard : current.Soft;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Limits
    {
        public ulong Soft;
        public ulong Hard;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit")]
    private static partial int GetRlimit(int resource, out Limits limits);

    [LibraryImport("libc", EntryPoint = "setrlimit")]
    private static partial int SetRlimit(int resource, in Limits limits);
}
