using System.Buffers;
using System.Globalization;

namespace CsiCache.Bench;

/// <summary>How big each workload's data is: the full shape or the <c>--quick</c> one.</summary>
internal sealed record DatasetShape(string Name, long BigFileBytes, int SmallFiles, int SmallDirectories, int SmallMeanBytes, int Shards, long ShardBytes, int RandomReads)
{
    public static DatasetShape Full { get; } = new("full", 2L << 30, 20_000, 100, 110_000, 8, 512L << 20, 2048);

    public static DatasetShape Quick { get; } = new("quick", 256L << 20, 2_000, 100, 110_000, 8, 64L << 20, 256);

    public long TotalBytes => BigFileBytes + ((long)SmallFiles * SmallMeanBytes) + (Shards * ShardBytes);
}

/// <summary>One file of the data set: its path relative to the data root and its size.</summary>
internal sealed record DataFile(string RelativePath, long Size);

/// <summary>One 1 MiB read of workload (c): which shard, where.</summary>
internal readonly record struct RangeRead(int Shard, long Offset, int Length);

/// <summary>
/// The data every tool reads, on local disk under <c>data-&lt;shape&gt;/</c>: (a) one big file, (b) an
/// ImageNet-like tree of small files in 100 directories, (c) large shard files. Contents are
/// incompressible pseudo-random bytes from a seed per file, written once and reused by later runs
/// (a marker file records the shape). Expected checksums are taken from these local files.
/// </summary>
internal sealed class Dataset
{
    public const int BlockSize = 1 << 20;
    public const string BigFile = "seq/big.bin";
    public const string TreeRoot = "imagenet/train";
    public const string ListingRoot = "imagenet";

    private Dataset(DatasetShape shape, string root)
    {
        Shape = shape;
        Root = root;
        var rng = new Random(1234);
        var small = new List<DataFile>(shape.SmallFiles);
        int perDir = (shape.SmallFiles + shape.SmallDirectories - 1) / shape.SmallDirectories;
        for (int i = 0; i < shape.SmallFiles; i++)
        {
            int dir = i / perDir;
            // ~110 KB on average, spread like JPEGs: 40%..160% of the mean.
            int size = (int)(shape.SmallMeanBytes * (0.4 + (1.2 * rng.NextDouble())));
            small.Add(new DataFile(string.Create(CultureInfo.InvariantCulture, $"{TreeRoot}/n{dir + 1440764:D8}/n{dir + 1440764:D8}_{i:D6}.JPEG"), size));
        }
        SmallFiles = small;
        SmallDirectoryCount = (shape.SmallFiles + perDir - 1) / perDir;
        var shards = new List<DataFile>(shape.Shards);
        for (int s = 0; s < shape.Shards; s++)
        {
            shards.Add(new DataFile(string.Create(CultureInfo.InvariantCulture, $"shards/train-{s:D5}.tar"), shape.ShardBytes));
        }
        ShardFiles = shards;
        Big = new DataFile(BigFile, shape.BigFileBytes);
    }

    public DatasetShape Shape { get; }

    public string Root { get; }

    public DataFile Big { get; }

    public IReadOnlyList<DataFile> SmallFiles { get; }

    public int SmallDirectoryCount { get; }

    public IReadOnlyList<DataFile> ShardFiles { get; }

    /// <summary>Entries under <see cref="ListingRoot"/>: train/, the class directories and the files.</summary>
    public int ListingEntries => 1 + SmallDirectoryCount + SmallFiles.Count;

    public long SmallBytes => SmallFiles.Sum(f => f.Size);

    public IEnumerable<DataFile> AllFiles => SmallFiles.Prepend(Big).Concat(ShardFiles);

    /// <summary>Expected checksum of each whole file, by relative path (filled by <see cref="ComputeExpected"/>).</summary>
    public Dictionary<string, ulong> Expected { get; } = new(StringComparer.Ordinal);

    /// <summary>Creates the files under <paramref name="workDirectory"/> unless a complete copy of this shape is there.</summary>
    public static Dataset Prepare(DatasetShape shape, string workDirectory, TextWriter log)
    {
        string root = Path.Join(workDirectory, "data-" + shape.Name);
        var dataset = new Dataset(shape, root);
        string marker = Path.Join(workDirectory, $"data-{shape.Name}.complete");
        string description = shape.ToString();
        if (File.Exists(marker) && File.ReadAllText(marker) == description)
        {
            log.WriteLine($"data set: reusing {root} ({Format.Bytes(shape.TotalBytes)})");
            return dataset;
        }
        log.WriteLine($"data set: writing {root} ({Format.Bytes(shape.TotalBytes)}, once) ...");
        File.Delete(marker);
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }
        byte[] buffer = new byte[BlockSize];
        foreach (DataFile file in dataset.AllFiles)
        {
            string path = Path.Join(root, file.RelativePath);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var rng = new FastRandom((ulong)StableSeed(file.RelativePath));
            using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0);
            for (long written = 0; written < file.Size;)
            {
                int n = (int)Math.Min(buffer.Length, file.Size - written);
                rng.Fill(buffer.AsSpan(0, n));
                stream.Write(buffer, 0, n);
                written += n;
            }
        }
        File.WriteAllText(marker, description);
        return dataset;
    }

    /// <summary>Reads every file once from local disk, in 1 MiB blocks, for the expected checksums.</summary>
    public void ComputeExpected()
    {
        var target = new FileTarget(Root);
        byte[] buffer = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);
        foreach (DataFile file in AllFiles)
        {
            (ulong hash, long bytes) = target.ReadWhole(file.RelativePath, buffer);
            if (bytes != file.Size)
            {
                throw new InvalidDataException($"{file.RelativePath}: {bytes} bytes on disk, {file.Size} expected; delete the work directory's data-{Shape.Name}.complete to rewrite it");
            }
            Expected[file.RelativePath] = hash;
        }
    }

    /// <summary>The reads of workload (c) for one run: 1 MiB at random (unaligned) offsets, seeded by run.</summary>
    public RangeRead[] RandomReadPlan(int run)
    {
        var rng = new Random(1000 + run);
        var plan = new RangeRead[Shape.RandomReads];
        for (int i = 0; i < plan.Length; i++)
        {
            int shard = rng.Next(ShardFiles.Count);
            long offset = rng.NextInt64(ShardFiles[shard].Size - BlockSize + 1);
            plan[i] = new RangeRead(shard, offset, BlockSize);
        }
        return plan;
    }

    /// <summary>Expected checksums of a plan's reads, taken from the local files.</summary>
    public ulong[] ExpectedRanges(RangeRead[] plan)
    {
        var target = new FileTarget(Root);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BlockSize);
        try
        {
            var result = new ulong[plan.Length];
            for (int i = 0; i < plan.Length; i++)
            {
                result[i] = target.ReadRange(ShardFiles[plan[i].Shard].RelativePath, plan[i].Offset, plan[i].Length, buffer);
            }
            return result;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private readonly Dictionary<int, ulong[]> _expectedRanges = [];

    /// <summary><see cref="ExpectedRanges"/>, computed once per run (the plan depends only on the run).</summary>
    public ulong[] ExpectedRangesCached(int run, RangeRead[] plan)
    {
        lock (_expectedRanges)
        {
            if (!_expectedRanges.TryGetValue(run, out ulong[]? expected))
            {
                expected = ExpectedRanges(plan);
                _expectedRanges[run] = expected;
            }
            return expected;
        }
    }

    /// <summary>The small files in a shuffled order, the same for every tool in one run.</summary>
    public DataFile[] ShuffledSmallFiles(int run)
    {
        DataFile[] order = [.. SmallFiles];
        new Random(2000 + run).Shuffle(order);
        return order;
    }

    private static int StableSeed(string text)
    {
        // string.GetHashCode is randomized per process; the data must not be.
        uint h = 2166136261;
        foreach (char c in text)
        {
            h = (h ^ c) * 16777619;
        }
        return (int)h;
    }

    /// <summary>xoshiro256** filling whole words: seeded <see cref="Random"/> is several times slower, and GBs are written.</summary>
    private sealed class FastRandom
    {
        private ulong _s0, _s1, _s2, _s3;

        public FastRandom(ulong seed)
        {
            _s0 = SplitMix(ref seed);
            _s1 = SplitMix(ref seed);
            _s2 = SplitMix(ref seed);
            _s3 = SplitMix(ref seed);
        }

        public void Fill(Span<byte> destination)
        {
            Span<ulong> words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(destination);
            for (int i = 0; i < words.Length; i++)
            {
                words[i] = Next();
            }
            Span<byte> tail = destination[(words.Length * sizeof(ulong))..];
            for (int i = 0; i < tail.Length; i++)
            {
                tail[i] = (byte)Next();
            }
        }

        private ulong Next()
        {
            ulong result = System.Numerics.BitOperations.RotateLeft(_s1 * 5, 7) * 9;
            ulong t = _s1 << 17;
            _s2 ^= _s0;
            _s3 ^= _s1;
            _s1 ^= _s2;
            _s0 ^= _s3;
            _s2 ^= t;
            _s3 = System.Numerics.BitOperations.RotateLeft(_s3, 45);
            return result;
        }

        private static ulong SplitMix(ref ulong x)
        {
            ulong z = x += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
