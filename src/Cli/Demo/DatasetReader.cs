using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cli.Demo;

/// <summary>What one pass over a mounted dataset found.</summary>
internal sealed record ReadPass(int Files, long Bytes, TimeSpan Elapsed, IReadOnlyList<string> Mismatches)
{
    public double MegabytesPerSecond => Elapsed.TotalSeconds > 0 ? Bytes / 1e6 / Elapsed.TotalSeconds : 0;

    public bool AllMatched => Mismatches.Count == 0;
}

/// <summary>
/// Reads every file of a dataset through a mount, the way a data loader does (many files at once,
/// whole files, 1 MiB reads), and checks each file's SHA-256 and size against the origin's.
/// Readers are dedicated threads, not thread-pool work items: each blocks in read(2) while the
/// FUSE server (possibly in this same process) needs the pool to fetch from the origin.
/// </summary>
internal static partial class DatasetReader
{
    private const int POSIX_FADV_DONTNEED = 4;

    /// <summary>
    /// Walks <paramref name="mountRoot"/> and returns the relative paths of its files, sorted, so the
    /// caller can compare the listing with what the origin holds.
    /// </summary>
    public static IReadOnlyList<string> List(string mountRoot) =>
        [.. Directory.EnumerateFiles(mountRoot, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(mountRoot, f))
            .Order(StringComparer.Ordinal)];

    /// <param name="dropPageCache">
    /// Evict each file from the kernel's page cache before reading it, so the read reaches the
    /// FUSE server and measures the node cache rather than the kernel's copy of it.
    /// </param>
    public static ReadPass ReadAll(string mountRoot, IReadOnlyList<SampleFile> expected, int readers, bool dropPageCache,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(expected);
        var queue = new ConcurrentQueue<SampleFile>(expected);
        var mismatches = new ConcurrentBag<string>();
        long bytes = 0;
        var started = Stopwatch.GetTimestamp();
        var threads = new List<Thread>();
        Exception? failure = null;
        for (var i = 0; i < Math.Max(1, readers); i++)
        {
            var thread = new Thread(() =>
            {
                var buffer = new byte[1 << 20];
                try
                {
                    while (!ct.IsCancellationRequested && queue.TryDequeue(out var file))
                    {
                        var (read, problem) = ReadOne(Path.Combine(mountRoot, file.RelativePath), file, buffer, dropPageCache);
                        Interlocked.Add(ref bytes, read);
                        if (problem is not null)
                        {
                            mismatches.Add($"{file.RelativePath}: {problem}");
                        }
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Interlocked.CompareExchange(ref failure, e, null);
                }
            })
            {
                IsBackground = true,
                Name = $"dataset-reader-{i}",
            };
            thread.Start();
            threads.Add(thread);
        }

        foreach (var thread in threads)
        {
            thread.Join();
        }

        ct.ThrowIfCancellationRequested();
        if (failure is not null)
        {
            mismatches.Add($"read failed: {failure.Message}");
        }

        return new ReadPass(expected.Count, bytes, Stopwatch.GetElapsedTime(started), [.. mismatches.Order(StringComparer.Ordinal)]);
    }

    private static (long Read, string? Problem) ReadOne(string path, SampleFile expected, byte[] buffer, bool dropPageCache)
    {
        using var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Open,
            Access = FileAccess.Read,
            Share = FileShare.Read,
            BufferSize = 0,
        });
        if (dropPageCache)
        {
            _ = PosixFadvise(stream.SafeFileHandle, 0, 0, POSIX_FADV_DONTNEED);
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        int n;
        while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            total += n;
        }

        if (total != expected.Size)
        {
            return (total, $"read {total} bytes, the origin has {expected.Size}");
        }

        return hash.GetHashAndReset().AsSpan().SequenceEqual(expected.Sha256)
            ? (total, null)
            : (total, "SHA-256 differs from the origin's");
    }

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(SafeFileHandle fd, long offset, long length, int advice);
}
