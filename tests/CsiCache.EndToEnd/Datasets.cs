using CsiCache.Cli.Demo;

namespace CsiCache.EndToEnd;

/// <summary>Test datasets and the checks every test makes on what a pod reads.</summary>
internal static class Datasets
{
    /// <summary>A small mixed dataset: 4 classes × 12 files of 1–300 KiB and two 5 MiB shards (the second not chunk-aligned).</summary>
    public static SampleDataset Small(string root, int seed = 7) => SampleDataset.Generate(root,
        new SampleDatasetSpec(Classes: 4, FilesPerClass: 12, MinFileBytes: 1 << 10, MaxFileBytes: 300 << 10, Shards: 2,
            MinShardBytes: (5 << 20) - 4097, MaxShardBytes: (5 << 20) + 4097, Seed: seed));

    /// <summary>Many small files in many directories: the shape that punishes per-file overheads.</summary>
    public static SampleDataset ManySmall(string root, int files, int seed = 11)
    {
        var layout = Enumerable.Range(0, files).Select(i => ($"part-{i % 20:D2}/sample-{i:D5}.bin", 512 + ((i * 7919) % (24 << 10))));
        return SampleDataset.Generate(root, layout, seed);
    }

    /// <summary>The pod lists exactly the origin's files, and reads every byte of every one of them correctly.</summary>
    public static ReadPass AssertEveryByte(string mountRoot, SampleDataset dataset, IEnumerable<SampleFile>? only = null)
    {
        var files = (only ?? dataset.Files).ToList();
        if (only is null)
        {
            Assert.Equal(files.Select(f => f.RelativePath).Order(StringComparer.Ordinal), DatasetReader.List(mountRoot));
        }

        var pass = DatasetReader.ReadAll(mountRoot, files, readers: 8, dropPageCache: true, TestContext.Current.CancellationToken);
        Assert.Empty(pass.Mismatches);
        Assert.Equal(files.Sum(f => f.Size), pass.Bytes);
        return pass;
    }

    /// <summary>Nothing of ours is mounted at these paths any more.</summary>
    public static void AssertNotMounted(params string[] paths)
    {
        foreach (var path in paths)
        {
            Assert.Null(HostMounts.At(path));
        }
    }
}
