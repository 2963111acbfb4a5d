namespace CsiCache.Origins.Tests;

/// <summary>Deterministic test bytes and a temp directory that cleans itself up.</summary>
internal static class TestData
{
    /// <summary>Bytes that differ at every offset of interest (a seeded PRNG, not a pattern that hides off-by-one errors).</summary>
    public static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static readonly IReadOnlyDictionary<string, string> NoParameters = new Dictionary<string, string>();
}

internal sealed class TempDir : IDisposable
{
    public TempDir(string prefix = "csicache-origins-")
    {
        Path = Directory.CreateTempSubdirectory(prefix).FullName;
    }

    public string Path { get; }

    public string Write(string relative, byte[] content)
    {
        string full = System.IO.Path.Join(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        File.WriteAllBytes(full, content);
        return full;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp dir left behind is not a test failure.
        }
    }
}
