using System.Security.Cryptography;
using CsiCache.Fuse;

namespace CsiCache.Datasets.Tests;

/// <summary>Tests that mount need root and /dev/fuse; without them they fail loudly rather than pass silently.</summary>
internal static class Privileges
{
    public static void RequireRootAndFuse()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Assert.Fail("this test mounts FUSE and must run as root (CI runs the suite as root)");
        }
        if (!File.Exists("/dev/fuse"))
        {
            Assert.Fail("this test needs /dev/fuse");
        }
    }
}

/// <summary>A directory under /tmp removed (with anything mounted inside unmounted) on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory(string label)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"csicache-ds-{label}-{Guid.NewGuid():N}"[..40]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Sub(string name)
    {
        string p = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(p);
        return p;
    }

    public void Dispose()
    {
        // A failed test may leave a mount below us; never rm -r through a FUSE mount.
        foreach (MountInfoEntry mount in MountInfo.Read())
        {
            if (mount.MountPoint.StartsWith(Path + "/", StringComparison.Ordinal))
            {
                FuseMount.Unmount(mount.MountPoint);
            }
        }
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>Deterministic test files of the sizes that matter for a chunked cache.</summary>
internal static class TestData
{
    public static byte[] Bytes(int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>
    /// Writes a small tree: 0 B, 1 B, 100 KB, chunk-1, chunk, chunk+1, 9 MiB, nested directories
    /// and a name with a space. Returns relative path → contents.
    /// </summary>
    public static Dictionary<string, byte[]> WriteDataset(string root, int chunkSize, int seed = 1)
    {
        var files = new Dictionary<string, byte[]>
        {
            ["empty.bin"] = [],
            ["one.bin"] = Bytes(1, seed + 1),
            ["small.bin"] = Bytes(100_000, seed + 2),
            ["chunk-minus-one.bin"] = Bytes(chunkSize - 1, seed + 3),
            ["chunk.bin"] = Bytes(chunkSize, seed + 4),
            ["chunk-plus-one.bin"] = Bytes(chunkSize + 1, seed + 5),
            ["sub/nine-mib.bin"] = Bytes(9 << 20, seed + 6),
            ["sub/deeper/a.txt"] = Bytes(1234, seed + 7),
            ["sub/deeper/name with space.txt"] = Bytes(4321, seed + 8),
            ["other/z.bin"] = Bytes(65_536, seed + 9),
        };
        foreach ((string path, byte[] bytes) in files)
        {
            string full = Path.Combine(root, path);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllBytes(full, bytes);
        }
        Directory.CreateDirectory(Path.Combine(root, "empty-dir"));
        return files;
    }

    /// <summary>Every file and directory under <paramref name="root"/>, relative, sorted, directories with a trailing '/'.</summary>
    public static List<string> Listing(string root)
    {
        var result = new List<string>();
        foreach (string entry in Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(root, entry);
            result.Add(Directory.Exists(entry) && !File.Exists(entry) ? rel + "/" : rel);
        }
        result.Sort(StringComparer.Ordinal);
        return result;
    }

    public static string Sha256(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>Reads a whole file through the mount and compares every byte with the expected contents.</summary>
    public static void AssertSameBytes(byte[] expected, string path)
    {
        byte[] actual = File.ReadAllBytes(path);
        Assert.Equal(expected.Length, actual.Length);
        if (!expected.AsSpan().SequenceEqual(actual))
        {
            int at = expected.AsSpan().CommonPrefixLength(actual);
            Assert.Fail($"{path}: first difference at byte {at} of {expected.Length}");
        }
    }
}
