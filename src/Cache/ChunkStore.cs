using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Enumeration;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cache;

/// <summary>
/// The object files on disk, and nothing else: paths, in-place chunk writes, deletes and the
/// start-up scan. Layout (see README "On-disk format"):
/// <code>
/// ROOT/.lock          flock'ed by the owning cache
/// ROOT/FORMAT         "csicache-objects 2 chunk-size N": chunk offsets mean nothing under another size
/// ROOT/v2/ab/HASH     one object, sparse: chunk i at offset i × chunk size (ab = first two hex digits of HASH)
/// </code>
/// One file per object, not per chunk, so that an object the cache holds whole is one ordinary
/// file: the kernel can read it directly (FUSE passthrough), and a large object costs one inode
/// rather than one per chunk. Which chunks a file holds is the index's business while the cache
/// runs; at start it is read back from the file's data extents (SEEK_DATA/SEEK_HOLE): a chunk
/// is only ever written whole, and a failed write punches its range out again.
/// </summary>
internal sealed unsafe class ChunkStore : IDisposable
{
    /// <summary>O_DIRECT wants buffers, offsets and lengths aligned to the device's block; 4 KiB covers every device.</summary>
    private const int DirectAlignment = 4096;

    /// <summary>Aligned staging buffers for direct writes (each one chunk); a writer that finds none free writes through the page cache.</summary>
    private const int MaxDirectBuffers = 8;

    private const string DataFolder = "v2";
    private const string FormatFile = "FORMAT";

    /// <summary>Data folders of earlier formats, removed when found.</summary>
    private static readonly string[] s_oldDataFolders = ["v1"];

    private readonly string _dataDirectory;
    private readonly ConcurrentBag<nint> _directBuffers = new();
    private int _directBuffersAllocated;
    private volatile bool _directUnsupported;
    private volatile bool _disposed;
    private readonly ChunkBlocks _blocks;

    public ChunkStore(string root, int chunkSize)
    {
        Root = Path.GetFullPath(root);
        _dataDirectory = Path.Combine(Root, DataFolder);
        ChunkSize = chunkSize;
        _blocks = ChunkBlocks.For(chunkSize);
    }

    public string Root { get; }

    public int ChunkSize { get; }

    /// <summary>Takes the root's lock file: two caches on one root would delete each other's files and double-count.</summary>
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

    /// <summary>Checks the FORMAT stamp; a store written with another chunk size or layout is wiped, not misread.</summary>
    public void EnsureFormat()
    {
        string formatPath = Path.Combine(Root, FormatFile);
        string expected = string.Create(CultureInfo.InvariantCulture, $"csicache-objects 2 chunk-size {ChunkSize}\n");
        string? actual = File.Exists(formatPath) ? File.ReadAllText(formatPath) : null;
        if (actual != expected)
        {
            if (Directory.Exists(_dataDirectory))
            {
                Directory.Delete(_dataDirectory, recursive: true);
            }
            File.WriteAllText(formatPath, expected);
        }
        foreach (string old in s_oldDataFolders)
        {
            string path = Path.Combine(Root, old);
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        // Fan-out folders are made on first use: 256 mkdirs up front cost most of a second on a
        // slow metadata path, for folders a small cache may never need.
        Directory.CreateDirectory(_dataDirectory);
    }

    public string GetPath(ObjectKey obj)
    {
        string hash = obj.Hash;
        return string.Create(CultureInfo.InvariantCulture, $"{_dataDirectory}/{hash.AsSpan(0, 2)}/{hash}");
    }

    /// <summary>Where chunk <paramref name="index"/> starts in its object's file.</summary>
    public long OffsetOf(long index) => index * ChunkSize;

    /// <summary>
    /// Writes <paramref name="data"/>, a chunk of <paramref name="chunkLength"/> bytes from
    /// <paramref name="offsetInChunk"/> (the whole chunk, or a range of its blocks), into its
    /// object's file (created if new) and stamps the file's mtime. No fsync: durability comes in
    /// batches (SyncCheckpoint). The caller serialises writes, deletes and the index per object.
    /// With <paramref name="tryDirect"/>, O_DIRECT is used when possible: the bytes go from an
    /// aligned staging buffer to the device, not through the page cache. Copying a large chunk
    /// into freshly allocated page-cache pages was most of the CPU of a cold sequential read; a
    /// copy into a reused staging buffer and a DMA cost a fraction of it. The bytes are then not
    /// in the page cache, so the caller serves its waiters from the fetch buffer. O_DIRECT only
    /// where the range starts on a device block and either fills whole blocks or ends the object
    /// (the padding then lies past the object's end, and the file is cut back to it): padding a
    /// range in the middle would overwrite its neighbour with zeros. The file is made at least as
    /// long as the chunk (a hole at its end), so that a scan at start sees the chunk's real
    /// length. Returns whether the write was direct. On failure the range is punched out again,
    /// so a later scan never mistakes a half-written range for data.
    /// </summary>
    public bool WriteRange(ChunkKey key, long offsetInChunk, ReadOnlySpan<byte> data, int chunkLength, DateTime modifiedUtc, bool tryDirect)
    {
        string path = GetPath(key.Object);
        long offset = OffsetOf(key.Index) + offsetInChunk;
        long chunkEnd = OffsetOf(key.Index) + chunkLength;
        bool endsObject = chunkLength < ChunkSize && offset + data.Length == chunkEnd;
        bool aligned = offset % DirectAlignment == 0 && (endsObject || data.Length % DirectAlignment == 0);
        nint buffer = 0;
        bool direct = tryDirect && aligned && !_directUnsupported && data.Length <= ChunkSize && TryRentDirectBuffer(out buffer);
        try
        {
            SafeFileHandle? handle = direct ? TryOpenDirect(path) : null;
            if (handle is null)
            {
                direct = false;
                handle = OpenForWrite(path);
            }
            using (handle)
            {
                try
                {
                    if (direct)
                    {
                        int padded = (data.Length + DirectAlignment - 1) & ~(DirectAlignment - 1);
                        var staging = new Span<byte>((void*)buffer, padded);
                        data.CopyTo(staging);
                        staging[data.Length..].Clear();
                        RandomAccess.Write(handle, staging, offset);
                        if (padded != data.Length)
                        {
                            // Only the end of an object is short: the file ends where the object does.
                            RandomAccess.SetLength(handle, offset + data.Length);
                        }
                    }
                    else
                    {
                        RandomAccess.Write(handle, data, offset);
                    }
                    if (offset + data.Length < chunkEnd && RandomAccess.GetLength(handle) < chunkEnd)
                    {
                        RandomAccess.SetLength(handle, chunkEnd);
                    }
                    File.SetLastWriteTimeUtc(handle, modifiedUtc);
                }
                catch
                {
                    // Only this range: the chunk's other blocks may be stored and indexed.
                    _ = CacheNative.PunchHole(handle, offset, data.Length);
                    throw;
                }
            }
            return direct;
        }
        finally
        {
            if (buffer != 0)
            {
                ReturnDirectBuffer(buffer);
            }
        }
    }

    /// <summary>Opens the object file for O_DIRECT writes; null when the file system cannot (then never tried again).</summary>
    private SafeFileHandle? TryOpenDirect(string path)
    {
        int fd = OpenCreatingFolder(path, direct: true);
        if (fd >= 0)
        {
            return new SafeFileHandle(fd, ownsHandle: true);
        }
        int errno = Marshal.GetLastPInvokeError();
        if (errno == 22 /* EINVAL: no O_DIRECT on this file system */)
        {
            _directUnsupported = true;
            return null;
        }
        throw OpenFailed(path, errno);
    }

    private static SafeFileHandle OpenForWrite(string path)
    {
        int fd = OpenCreatingFolder(path, direct: false);
        return fd >= 0 ? new SafeFileHandle(fd, ownsHandle: true) : throw OpenFailed(path, Marshal.GetLastPInvokeError());
    }

    private static IOException OpenFailed(string path, int errno) =>
        new($"open {path}: {Marshal.GetPInvokeErrorMessage(errno)}", errno);

    private static int OpenCreatingFolder(string path, bool direct)
    {
        int fd = CacheNative.OpenForWrite(path, direct);
        if (fd < 0 && Marshal.GetLastPInvokeError() == 2 /* ENOENT: the fan-out folder */)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            fd = CacheNative.OpenForWrite(path, direct);
        }
        return fd;
    }

    /// <summary>Frees an evicted chunk's range (it becomes a hole: read back as absent at the next start). Best effort: a range left in place holds right bytes.</summary>
    public void TryPunch(ChunkKey key, int length)
    {
        int fd = CacheNative.OpenExistingForWrite(GetPath(key.Object));
        if (fd < 0)
        {
            return;
        }
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        _ = CacheNative.PunchHole(handle, OffsetOf(key.Index), length);
    }

    /// <summary>The object file's length, or -1 when there is none.</summary>
    public long GetFileLength(ObjectKey obj)
    {
        var info = new FileInfo(GetPath(obj));
        return info.Exists ? info.Length : -1;
    }

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

    /// <summary>
    /// Opens an object file for reading. A plain open(2): this runs once per chunk a reader comes
    /// back to after its fd was closed, and File.OpenHandle's fstat and flock pair (FileShare
    /// emulation, of no use here) tripled the syscalls. ENOENT is a FileNotFoundException, as
    /// callers expect of a file evicted behind them.
    /// </summary>
    public static SafeFileHandle OpenRead(string path)
    {
        int fd = CacheNative.OpenReadOnly(path);
        if (fd >= 0)
        {
            return new SafeFileHandle(fd, ownsHandle: true);
        }
        int errno = Marshal.GetLastPInvokeError();
        throw errno switch
        {
            2 /* ENOENT */ => new FileNotFoundException($"open {path}: {Marshal.GetPInvokeErrorMessage(errno)}", path),
            13 /* EACCES */ => new UnauthorizedAccessException($"open {path}: {Marshal.GetPInvokeErrorMessage(errno)}"),
            _ => OpenFailed(path, errno),
        };
    }

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
    /// Lists the stored chunks: one getdents + stat per object file (FileSystemEnumerable gives
    /// length and mtime without a second stat); a file larger than one chunk is also opened and
    /// its data extents walked, since it may hold only some of its chunks. Anything that is not a
    /// well-placed object file is deleted: the data folder is ours alone.
    /// </summary>
    public List<ScannedChunk> Scan(out int deletedFiles)
    {
        var chunks = new List<ScannedChunk>();
        var doomed = new List<string>();
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 };
        var files = new FileSystemEnumerable<(ScannedChunk? Whole, string? Sparse, string? Doomed)>(
            _dataDirectory,
            (ref FileSystemEntry entry) => Classify(ref entry),
            options)
        {
            ShouldIncludePredicate = (ref FileSystemEntry entry) => !entry.IsDirectory,
        };
        foreach ((ScannedChunk? whole, string? sparse, string? path) in files)
        {
            if (whole is { } chunk)
            {
                chunks.Add(chunk);
            }
            else if (sparse is not null)
            {
                if (!TryScanExtents(sparse, chunks))
                {
                    doomed.Add(sparse);
                }
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

    /// <summary>An object file of at most one chunk is chunk 0 (no holes possible); a larger one is returned for <see cref="TryScanExtents"/>.</summary>
    private (ScannedChunk? Whole, string? Sparse, string? Doomed) Classify(ref FileSystemEntry entry)
    {
        ReadOnlySpan<char> name = entry.FileName;
        ReadOnlySpan<char> folder = Path.GetFileName(entry.Directory);
        if (name.Length == ObjectKey.HashLength
            && folder.Length == 2
            && name.StartsWith(folder, StringComparison.Ordinal)
            && ObjectKey.IsValidHash(name))
        {
            if (entry.Length <= ChunkSize)
            {
                var key = new ChunkKey(new ObjectKey(name.ToString()), 0);
                return (new ScannedChunk(key, (int)entry.Length, entry.LastWriteTimeUtc.UtcTicks, ulong.MaxValue), null, null);
            }
            return (null, entry.ToFullPath(), null);
        }
        return (null, null, entry.ToFullPath());
    }

    /// <summary>
    /// Adds every chunk with data, with the blocks whose whole range is data (a chunk fetched
    /// whole has all of them; one a random reader fetched in ranges, some). False when the file
    /// cannot be read (it is then deleted). A chunk is as long as the file lets it be: the file
    /// may end inside a chunk that is not the object's last (a range written there last), and
    /// that entry's length is then short; its blocks still hold right bytes, and a fetch of the
    /// chunk at its real length replaces it.
    /// </summary>
    private bool TryScanExtents(string path, List<ScannedChunk> chunks)
    {
        try
        {
            using SafeFileHandle handle = OpenRead(path);
            long length = RandomAccess.GetLength(handle);
            long modified = File.GetLastWriteTimeUtc(handle).Ticks;
            var obj = new ObjectKey(Path.GetFileName(path));
            var present = new Dictionary<long, ulong>();
            int LengthOf(long index) => (int)(Math.Min(OffsetOf(index + 1), length) - OffsetOf(index));
            long position = 0;
            while (position < length)
            {
                long dataStart = CacheNative.NextData(handle, position);
                if (dataStart < 0)
                {
                    break; // ENXIO: no data after position
                }
                long dataEnd = Math.Min(CacheNative.NextHole(handle, dataStart), length);
                if (dataEnd <= dataStart)
                {
                    break;
                }
                // The blocks of every chunk this run reaches that lie wholly inside it.
                for (long index = dataStart / ChunkSize; OffsetOf(index) < dataEnd; index++)
                {
                    int chunkLength = LengthOf(index);
                    long from = Math.Max(dataStart, OffsetOf(index)) - OffsetOf(index);
                    long to = Math.Min(dataEnd, OffsetOf(index) + chunkLength) - OffsetOf(index);
                    ulong bits = _blocks.Within(from, (int)(to - from), chunkLength);
                    if (bits != 0)
                    {
                        present[index] = (present.TryGetValue(index, out ulong earlier) ? earlier : 0) | bits;
                    }
                }
                position = dataEnd;
            }
            foreach ((long index, ulong bits) in present)
            {
                chunks.Add(new ScannedChunk(new ChunkKey(obj, index), LengthOf(index), modified, bits));
            }
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}

/// <summary>A chunk found at start-up; <see cref="ModifiedUtcTicks"/> is its object file's mtime.</summary>
internal readonly record struct ScannedChunk(ChunkKey Key, int Length, long ModifiedUtcTicks, ulong Present);
