using System.Runtime.InteropServices;

namespace CsiCache.Node;

/// <summary>Space and inodes of the filesystem holding a path, from statvfs(3).</summary>
public readonly record struct FileSystemUsage(long TotalBytes, long AvailableBytes, long UsedBytes,
    long TotalInodes, long FreeInodes, long UsedInodes)
{
    public static FileSystemUsage Of(string path)
    {
        if (Native.StatVfs(path, out var s) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"statvfs {path}: {Native.ErrorText(errno)}");
        }

        var unit = (long)(s.FragmentSize != 0 ? s.FragmentSize : s.BlockSize);
        var total = (long)s.Blocks * unit;
        return new FileSystemUsage(
            total, (long)s.BlocksAvailable * unit, total - ((long)s.BlocksFree * unit),
            (long)s.Files, (long)s.FilesFree, (long)(s.Files - s.FilesFree));
    }
}
