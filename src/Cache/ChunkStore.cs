using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Enumeration;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cache;

/// <summary>
/// The chunk files on disk, and nothing else: paths, atomic writes, deletes and the start-up
/// scan. Layout (see README "On-disk format"):
/// <code>
/// ROOT/.lock                         flock'ed by the owning cache
/// ROOT/FORMAT                        "csicache-chunks 1 chunk-size N": chunk indexes mean nothing under another size
/// ROOT/v1/ab/HASH-INDEX              chunk data, headerless (ab = first two hex digits of HASH)
/// ROOT/v1/ab/HASH-INDEX.XXXXXXXX.tmp a chunk being written; renamed into place, or deleted at start
/// </code>
/// </summary>
internal sealed unsafe class ChunkStore : IDisposable
{
    /// <summary>O_DIRECT wants buffers, offsets and lengths aligned to the device's block; 4 KiB covers every device.</summary>
    private const int DirectAlignment = 4096;

    /// <summary>Aligned staging buffers for direct writes (each one chunk); a writer that finds none free writes through the page cache.</summary>
    private const int MaxDirectBuffers = 8;

    private const string DataFolder = "v1";
    private const string TempSuffix = ".tmp";
    private const string FormatFile = "FORMAT";

    private readonly string _dataDirectory;
    private readonly ConcurrentBag<nint> _directBuffers = new();
    private int _directBuffersAllocated;
    private volatile bool _directUnsupported;
    private volatile bool _disposed;

    public ChunkStore(string root, int chunkSize)
    {
        Root = Path.GetFullPath(root);
        _dataDirectory = Path.Combine(Root, DataFolder);
        ChunkSize = chunkSize;
    }

    public string Root { get; }

    public int ChunkSize { get; }

    /// <summary>Takes the root's lock file: two caches on one root would delete each other's temp files and double-count.</summary>
    public SafeFileHandle Lock()
    {
        Directory.CreateDirectory(Root);
        try
        {
            // FileShare.None makes .NET take flock(LOCK_EX | LOCK_NB): released by the kernel when the process dies.
            return File.OpenHandle(Path.Combine(Root, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex)
        {
            throw new IOException($"Cache root {Root} is in use by another cache instance.", ex);
        }
    }

    /// <summary>Checks the FORMAT stamp; a store written with another chunk size or version is wiped, not misread.</summary>
    public void EnsureFormat()
    {
        string formatPath = Path.Combine(Root, FormatFile);
        string expected = string.Create(CultureInfo.InvariantCulture, $"csicache-chunks 1 chunk-size {ChunkSize}\n");
        string? actual = File.Exists(formatPath) ? File.ReadAllText(formatPath) : null;
        if (actual != expected)
        {
            if (Directory.Exists(_dataDirectory))
            {
                Directory.Delete(_dataDirectory, recursive: true);
            }
            File.WriteAllText(formatPath, expected);
        }
        // Fan-out folders are made on first use: 256 mkdirs up front cost most of a second on a
        // slow metadata path, for folders a small cache may never need.
        Directory.CreateDirectory(_dataDirectory);
    }

    public string GetPath(ChunkKey key)
    {
        string hash = key.Object.Hash;
        return string.Create(CultureInfo.InvariantCulture, $"{_dataDirectory}/{hash.AsSpan(0, 2)}/{hash}-{key.Index}");
    }

    /// <summary>
    /// Writes <paramref name="data"/> to a temp file beside <paramref name="finalPath"/> and stamps
    /// its mtime; the caller renames it into place with <see cref="Commit"/>. No fsync: durability
    /// comes in batches (SyncCheckpoint).
    /// </summary>
    public string WriteTemp(string finalPath, ReadOnlySpan<byte> data, DateTime modifiedUtc)
    {
        string temp = TempPathFor(finalPath);
        SafeFileHandle handle;
        try
        {
            handle = CreateTemp(temp, data.Length);
        }
        catch (DirectoryNotFoundException)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(temp)!);
            handle = CreateTemp(temp, data.Length);
        }
        try
        {
            using (handle)
            {
                RandomAccess.Write(handle, data, 0);
                File.SetLastWriteTimeUtc(handle, modifiedUtc);
            }
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        return temp;
    }

    /// <summary>
    /// Like <see cref="WriteTemp"/>, but with O_DIRECT: the bytes go from an aligned staging buffer
    /// to the device, not through the page cache. Copying a large chunk into freshly allocated
    /// page-cache pages was most of the CPU of a cold sequential read (the cache file's pages are
    /// new every time); a copy into a reused staging buffer and a DMA cost a fraction of it. The
    /// chunk is then not in the page cache, so the caller serves its waiters from the fetch buffer.
    /// Null when direct I/O is not possible here (file system without O_DIRECT, no free staging
    /// buffer): the caller writes through the page cache instead.
    /// </summary>
    public string? TryWriteTempDirect(string finalPath, ReadOnlySpan<byte> data, DateTime modifiedUtc)
    {
        if (_directUnsupported || data.Length > ChunkSize || !TryRentDirectBuffer(out nint buffer))
        {
            return null;
        }
        try
        {
            string temp = TempPathFor(finalPath);
            int fd = CacheNative.CreateDirect(temp);
            if (fd < 0 && Marshal.GetLastPInvokeError() == 2 /* ENOENT: the fan-out folder */)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(temp)!);
                fd = CacheNative.CreateDirect(temp);
            }
            if (fd < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == 22 /* EINVAL: no O_DIRECT on this file system */)
                {
                    _directUnsupported = true;
                    return null;
                }
                throw new IOException($"create {temp}: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
            }
            try
            {
                using (var handle = new SafeFileHandle(fd, ownsHandle: true))
                {
                    int padded = (data.Length + DirectAlignment - 1) & ~(DirectAlignment - 1);
                    var staging = new Span<byte>((void*)buffer, padded);
                    data.CopyTo(staging);
                    staging[data.Length..].Clear();
                    RandomAccess.Write(handle, staging, 0);
                    if (padded != data.Length)
                    {
                        RandomAccess.SetLength(handle, data.Length);
                    }
                    File.SetLastWriteTimeUtc(handle, modifiedUtc);
                }
            }
            catch
            {
                TryDelete(temp);
                throw;
            }
            return temp;
        }
        finally
        {
            ReturnDirectBuffer(buffer);
        }
    }

    /// <summary>A temp name beside <paramref name="finalPath"/>: the scan at start deletes any left by a crash.</summary>
    private static string TempPathFor(string finalPath) =>
        string.Create(CultureInfo.InvariantCulture, $"{finalPath}.{Random.Shared.Next():x8}{TempSuffix}");

    public void Dispose()
    {
        _disposed = true;
        while (_directBuffers.TryTake(out nint buffer))
        {
            NativeMemory.AlignedFree((void*)buffer);
        }
    }

    private bool TryRentDirectBuffer(out nint buffer)
    {
        if (_directBuffers.TryTake(out buffer))
        {
            return true;
        }
        if (Interlocked.Increment(ref _directBuffersAllocated) > MaxDirectBuffers)
        {
            Interlocked.Decrement(ref _directBuffersAllocated);
            return false;
        }
        buffer = (nint)NativeMemory.AlignedAlloc((nuint)ChunkSize, DirectAlignment);
        return true;
    }

    private void ReturnDirectBuffer(nint buffer)
    {
        _directBuffers.Add(buffer);
        if (_disposed && _directBuffers.TryTake(out nint late))
        {
            NativeMemory.AlignedFree((void*)late);
        }
    }

    // preallocationSize makes .NET fallocate the whole chunk: one extent, and ENOSPC now rather than mid-write.
    private static SafeFileHandle CreateTemp(string path, int length) =>
        File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.None, preallocationSize: length);

    /// <summary>rename(2) over the final name: readers see the old file, or the whole new one.</summary>
    public static void Commit(string tempPath, string finalPath)
    {
        try
        {
            File.Move(tempPath, finalPath, overwrite: true);
        }
        catch
        {
            TryDelete(tempPath);
            throw;
        }
    }

    public static SafeFileHandle OpenRead(string path) =>
        File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Best effort: a leftover file is found and deleted by the next start-up scan.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>
    /// Lists the chunk files (one getdents + stat per file, through FileSystemEnumerable, which
    /// gives length and mtime without a second stat). Temp files and anything that is not a
    /// well-placed chunk name are deleted: the data folder is ours alone.
    /// </summary>
    public List<ScannedChunk> Scan(out int deletedFiles)
    {
        var chunks = new List<ScannedChunk>();
        var doomed = new List<string>();
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 };
        var files = new FileSystemEnumerable<(ScannedChunk? Chunk, string? Doomed)>(
            _dataDirectory,
            (ref FileSystemEntry entry) => Classify(ref entry),
            options)
        {
            ShouldIncludePredicate = (ref FileSystemEntry entry) => !entry.IsDirectory,
        };
        foreach ((ScannedChunk? chunk, string? path) in files)
        {
            if (chunk is { } c)
            {
                chunks.Add(c);
            }
            else if (path is not null)
            {
                doomed.Add(path);
            }
        }
        foreach (string path in doomed)
        {
            TryDelete(path);
        }
        deletedFiles = doomed.Count;
        return chunks;
    }

    private (ScannedChunk? Chunk, string? Doomed) Classify(ref FileSystemEntry entry)
    {
        ReadOnlySpan<char> name = entry.FileName;
        ReadOnlySpan<char> folder = Path.GetFileName(entry.Directory);
        int dash = name.IndexOf('-');
        if (dash == ObjectKey.HashLength
            && !name.EndsWith(TempSuffix, StringComparison.Ordinal)
            && folder.Length == 2
            && name.StartsWith(folder, StringComparison.Ordinal)
            && ObjectKey.IsValidHash(name[..dash])
            && long.TryParse(name[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out long index)
            && entry.Length <= ChunkSize)
        {
            var key = new ChunkKey(new ObjectKey(name[..dash].ToString()), index);
            return (new ScannedChunk(key, (int)entry.Length, entry.LastWriteTimeUtc.UtcTicks), null);
        }
        return (null, entry.ToFullPath());
    }
}

/// <summary>A chunk file found at start-up.</summary>
internal readonly record struct ScannedChunk(ChunkKey Key, int Length, long ModifiedUtcTicks);
