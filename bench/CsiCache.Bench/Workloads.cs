using System.Diagnostics;

namespace CsiCache.Bench;

/// <summary>The workloads, by their letter in the issue.</summary>
internal enum WorkloadId
{
    /// <summary>(a) one big file, sequential 1 MiB reads.</summary>
    Sequential,

    /// <summary>(b) small files in shuffled order, one reader.</summary>
    SmallFiles1,

    /// <summary>(b) small files in shuffled order, four readers.</summary>
    SmallFiles4,

    /// <summary>(c) 1 MiB reads at random offsets in the shards, four readers.</summary>
    RandomShards,

    /// <summary>(d) recursive listing with a stat of every entry.</summary>
    Listing,
}

/// <summary>What one timed pass measured. <see cref="Error"/> or mismatches make the figure void.</summary>
internal sealed record PassResult(double Seconds, long Bytes, long Items, int Mismatches, string? Error)
{
    public bool Valid => Error is null && Mismatches == 0 && Seconds > 0;

    public static PassResult Failed(string error) => new(0, 0, 0, 0, error);
}

/// <summary>Runs one workload against one target, timed, checking every byte against the expected checksums.</summary>
internal static class Workloads
{
    public const int RandomReaders = 4;

    public static string Letter(WorkloadId id) => id switch
    {
        WorkloadId.Sequential => "a",
        WorkloadId.SmallFiles1 or WorkloadId.SmallFiles4 => "b",
        WorkloadId.RandomShards => "c",
        _ => "d",
    };

    public static string Title(WorkloadId id, Dataset data) => id switch
    {
        WorkloadId.Sequential => $"(a) seq {Format.Bytes(data.Big.Size)} MB/s",
        WorkloadId.SmallFiles1 => $"(b) {data.SmallFiles.Count:N0} files ×1 files/s",
        WorkloadId.SmallFiles4 => $"(b) {data.SmallFiles.Count:N0} files ×4 files/s",
        WorkloadId.RandomShards => $"(c) rand 1 MiB ×{RandomReaders} MB/s",
        _ => $"(d) list+stat {data.ListingEntries:N0} entries/s",
    };

    /// <summary>The figure shown for a pass: MB/s, files/s or entries/s.</summary>
    public static double Figure(WorkloadId id, PassResult r) => id switch
    {
        WorkloadId.Sequential or WorkloadId.RandomShards => r.Bytes / 1e6 / r.Seconds,
        _ => r.Items / r.Seconds,
    };

    public static PassResult Run(WorkloadId id, ReadTarget target, Dataset data, int run, CancellationToken ct) => id switch
    {
        WorkloadId.Sequential => Sequential(target, data),
        WorkloadId.SmallFiles1 => SmallFiles(target, data, run, 1, ct),
        WorkloadId.SmallFiles4 => SmallFiles(target, data, run, 4, ct),
        WorkloadId.RandomShards => RandomShards(target, data, run, ct),
        _ => Listing(target, data),
    };

    /// <summary>(a) through parallel ranged GETs: only an HTTP origin offers it.</summary>
    public static PassResult SequentialParallel(HttpTarget target, Dataset data, int streams)
    {
        var clock = Stopwatch.StartNew();
        (ulong hash, long bytes) = target.ReadWholeParallel(data.Big.RelativePath, data.Big.Size, streams, 8 << 20);
        double seconds = clock.Elapsed.TotalSeconds;
        return new PassResult(seconds, bytes, 1, hash == data.Expected[data.Big.RelativePath] && bytes == data.Big.Size ? 0 : 1, null);
    }

    private static PassResult Sequential(ReadTarget target, Dataset data)
    {
        byte[] buffer = GC.AllocateUninitializedArray<byte>(Dataset.BlockSize, pinned: true);
        var clock = Stopwatch.StartNew();
        (ulong hash, long bytes) = target.ReadWhole(data.Big.RelativePath, buffer);
        double seconds = clock.Elapsed.TotalSeconds;
        bool ok = hash == data.Expected[data.Big.RelativePath] && bytes == data.Big.Size;
        return new PassResult(seconds, bytes, 1, ok ? 0 : 1, null);
    }

    private static PassResult SmallFiles(ReadTarget target, Dataset data, int run, int readers, CancellationToken ct)
    {
        DataFile[] order = data.ShuffledSmallFiles(run);
        int next = -1, mismatches = 0;
        long bytes = 0;
        var clock = Stopwatch.StartNew();
        RunReaders(readers, () =>
        {
            byte[] buffer = GC.AllocateUninitializedArray<byte>(Dataset.BlockSize, pinned: true);
            for (int i = Interlocked.Increment(ref next); i < order.Length && !ct.IsCancellationRequested; i = Interlocked.Increment(ref next))
            {
                (ulong hash, long n) = target.ReadWhole(order[i].RelativePath, buffer);
                Interlocked.Add(ref bytes, n);
                if (hash != data.Expected[order[i].RelativePath] || n != order[i].Size)
                {
                    Interlocked.Increment(ref mismatches);
                }
            }
        });
        double seconds = clock.Elapsed.TotalSeconds;
        ct.ThrowIfCancellationRequested();
        return new PassResult(seconds, bytes, order.Length, mismatches, null);
    }

    private static PassResult RandomShards(ReadTarget target, Dataset data, int run, CancellationToken ct)
    {
        RangeRead[] plan = data.RandomReadPlan(run);
        ulong[] expected = data.ExpectedRangesCached(run, plan);
        int next = -1, mismatches = 0;
        long bytes = 0;
        var clock = Stopwatch.StartNew();
        RunReaders(RandomReaders, () =>
        {
            byte[] buffer = GC.AllocateUninitializedArray<byte>(Dataset.BlockSize, pinned: true);
            for (int i = Interlocked.Increment(ref next); i < plan.Length && !ct.IsCancellationRequested; i = Interlocked.Increment(ref next))
            {
                RangeRead r = plan[i];
                ulong hash = target.ReadRange(data.ShardFiles[r.Shard].RelativePath, r.Offset, r.Length, buffer);
                Interlocked.Add(ref bytes, r.Length);
                if (hash != expected[i])
                {
                    Interlocked.Increment(ref mismatches);
                }
            }
        });
        double seconds = clock.Elapsed.TotalSeconds;
        ct.ThrowIfCancellationRequested();
        return new PassResult(seconds, bytes, plan.Length, mismatches, null);
    }

    private static PassResult Listing(ReadTarget target, Dataset data)
    {
        var clock = Stopwatch.StartNew();
        (long entries, long bytes) = target.List(Dataset.ListingRoot);
        double seconds = clock.Elapsed.TotalSeconds;
        // Sizes are checked where the target reports them (HTTP autoindex pages are not parsed for sizes).
        bool ok = entries == data.ListingEntries && (bytes == 0 || bytes == data.SmallBytes);
        return new PassResult(seconds, bytes, entries, ok ? 0 : 1, ok ? null : $"listed {entries} entries/{bytes} bytes, expected {data.ListingEntries}/{data.SmallBytes}");
    }

    /// <summary>Runs <paramref name="body"/> on <paramref name="readers"/> threads; the first exception wins.</summary>
    private static void RunReaders(int readers, Action body)
    {
        if (readers == 1)
        {
            body();
            return;
        }
        var threads = new Thread[readers];
        Exception? failure = null;
        for (int t = 0; t < readers; t++)
        {
            threads[t] = new Thread(() =>
            {
                try
                {
                    body();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or HttpRequestException or Amazon.Runtime.AmazonServiceException or InvalidOperationException)
                {
                    Interlocked.CompareExchange(ref failure, e, null);
                }
            })
            { IsBackground = true, Name = "reader" + t };
            threads[t].Start();
        }
        foreach (Thread thread in threads)
        {
            thread.Join();
        }
        if (failure is not null)
        {
            throw new IOException(failure.Message, failure);
        }
    }
}
