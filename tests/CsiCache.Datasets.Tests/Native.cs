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

    /// <summary>
    /// Opens read-only with O_DIRECT, so reads bypass the page cache and each one reaches the FUSE
    /// server (.NET's FileOptions has no O_DIRECT on Linux: 0x20000000 is ignored there).
    /// </summary>
    public static SafeFileHandle OpenDirect(string path)
    {
        int oDirect = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x10000 : 0x4000;
        const int OCloexec = 0x80000;
        int fd = Open(path, oDirect | OCloexec);
        if (fd < 0)
        {
            throw new IOException($"open({path}, O_DIRECT) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Reads the whole file with 1 MiB O_DIRECT reads into page-aligned memory and returns its SHA-256.</summary>
    public static unsafe string Sha256Direct(string path)
    {
        const int Size = 1 << 20;
        using SafeFileHandle handle = OpenDirect(path);
        byte* buffer = (byte*)NativeMemory.AlignedAlloc(Size, 4096);
        try
        {
            using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
            long offset = 0;
            while (true)
            {
                var span = new Span<byte>(buffer, Size);
                int n = RandomAccess.Read(handle, span, offset);
                if (n <= 0)
                {
                    break;
                }
                sha.AppendData(span[..n]);
                offset += n;
            }
            return Convert.ToHexStringLower(sha.GetHashAndReset());
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    /// <summary>
    /// Reads the first <paramref name="count"/> MiB of a file with 1 MiB O_DIRECT reads, in order (each
    /// one READ at the server), and returns them.
    /// </summary>
    public static unsafe byte[] ReadDirectPrefix(string path, int count)
    {
        const int Size = 1 << 20;
        using SafeFileHandle handle = OpenDirect(path);
        byte* buffer = (byte*)NativeMemory.AlignedAlloc(Size, 4096);
        try
        {
            byte[] result = new byte[count * Size];
            for (int i = 0; i < count; i++)
            {
                var span = new Span<byte>(buffer, Size);
                int n = RandomAccess.Read(handle, span, (long)i * Size);
                if (n != Size)
                {
                    throw new IOException($"{path}: O_DIRECT read {i} returned {n} bytes");
                }
                span.CopyTo(result.AsSpan(i * Size));
            }
            return result;
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(SafeFileHandle fd, long offset, long length, int advice);
}
