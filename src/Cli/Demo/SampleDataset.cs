using System.Globalization;
using System.Security.Cryptography;

namespace CsiCache.Cli.Demo;

/// <summary>One generated file: where it is under the dataset root, its size, and its SHA-256.</summary>
internal sealed record SampleFile(string RelativePath, long Size, byte[] Sha256);

/// <summary>The shape of a generated dataset.</summary>
internal sealed record SampleDatasetSpec(int Classes, int FilesPerClass, int MinFileBytes, int MaxFileBytes, int Shards,
    int MinShardBytes, int MaxShardBytes, int Seed)
{
    /// <summary>ImageNet-like and small enough to run in seconds: 300 JPEG-sized files in 10 classes, plus 4 shards.</summary>
    public static SampleDatasetSpec Demo { get; } = new(10, 30, 20 << 10, 200 << 10, 4, 4 << 20, 8 << 20, Seed: 20261123);
}

/// <summary>
/// Writes a deterministic ImageNet-like dataset: <c>train/&lt;wnid&gt;/&lt;wnid&gt;_&lt;n&gt;.JPEG</c> files of
/// JPEG-typical sizes and a few <c>shards/train-0000k-of-0000n.tar</c> files of several MiB, all of
/// seeded random bytes (so neither compression nor deduplication flatters a read), and remembers
/// each file's SHA-256 so every byte read back through a mount can be checked.
/// </summary>
internal sealed class SampleDataset
{
    private SampleDataset(string root, IReadOnlyList<SampleFile> files)
    {
        Root = root;
        Files = files;
    }

    public string Root { get; }

    public IReadOnlyList<SampleFile> Files { get; }

    public long TotalBytes => Files.Sum(f => f.Size);

    public SampleFile? Find(string relativePath) => Files.FirstOrDefault(f => f.RelativePath == relativePath);

    public static SampleDataset Generate(string root, SampleDatasetSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Directory.CreateDirectory(root);
        // System.Random with a seed is a stable generator across runs and machines (the seeded
        // legacy algorithm), which is what "deterministic" needs here; it is not for secrets.
#pragma warning disable CA5394
        var random = new Random(spec.Seed);
        var files = new List<SampleFile>();
        for (var c = 0; c < spec.Classes; c++)
        {
            var wnid = "n" + (1440764 + (c * 7919)).ToString("D8", CultureInfo.InvariantCulture);
            for (var i = 0; i < spec.FilesPerClass; i++)
            {
                var name = $"{wnid}_{10026 + (i * 37)}.JPEG";
                var size = random.Next(spec.MinFileBytes, spec.MaxFileBytes + 1);
                files.Add(Write(root, $"train/{wnid}/{name}", size, random, jpeg: true));
            }
        }

        for (var s = 0; s < spec.Shards; s++)
        {
            var size = random.Next(spec.MinShardBytes, spec.MaxShardBytes + 1);
            files.Add(Write(root, $"shards/train-{s:D5}-of-{spec.Shards:D5}.tar", size, random, jpeg: false));
        }
#pragma warning restore CA5394

        return new SampleDataset(root, files);
    }

    /// <summary>Generates arbitrary files (names and sizes given), for tests that need a particular shape.</summary>
    public static SampleDataset Generate(string root, IEnumerable<(string RelativePath, int Size)> layout, int seed)
    {
        ArgumentNullException.ThrowIfNull(layout);
#pragma warning disable CA5394
        var random = new Random(seed);
        var files = layout.Select(f => Write(root, f.RelativePath, f.Size, random, jpeg: false)).ToList();
#pragma warning restore CA5394
        return new SampleDataset(root, files);
    }

    private static SampleFile Write(string root, string relativePath, int size, Random random, bool jpeg)
    {
        var bytes = new byte[size];
        random.NextBytes(bytes);
        if (jpeg && size >= 4)
        {
            // SOI + APP0, so `file` calls them what they pretend to be.
            bytes[0] = 0xFF;
            bytes[1] = 0xD8;
            bytes[2] = 0xFF;
            bytes[3] = 0xE0;
        }

        var path = Path.Combine(root, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return new SampleFile(relativePath, size, SHA256.HashData(bytes));
    }
}
