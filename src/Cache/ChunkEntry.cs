using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cache;

/// <summary>What a fetch flight hands to its waiters: a stored chunk, or bytes that could not be stored.</summary>
internal abstract class ChunkSource
{
    protected ChunkSource(ChunkKey key, int length)
    {
        Key = key;
        Length = length;
    }

    public ChunkKey Key { get; }

    public int Length { get; }

    /// <summary>Turns the one reference the flight holds into one per receiver (zero drops it).</summary>
    public abstract void HandOff(int receivers);

    /// <summary>Drops one receiver's reference.</summary>
    public abstract void Release();
}

/// <summary>
/// One chunk file in the index. The reference count is what "pinned" means: eviction takes only
/// entries with no references, and the file is opened while there is at least one (so an idle
/// cache of 100k chunks holds no descriptors).
/// </summary>
internal sealed class ChunkEntry : ChunkSource
{
    private readonly Lock _gate = new();
    private int _refs;
    private bool _removed;
    private SafeFileHandle? _handle;

    public ChunkEntry(ChunkKey key, int length, long persistedAccessTicks)
        : base(key, length)
    {
        PersistedAccessTicks = persistedAccessTicks;
    }

    /// <summary>Position in the LRU order: a global sequence number, larger is more recent.</summary>
    public long LastAccess;

    /// <summary>UTC ticks of the access time last written to the file's mtime.</summary>
    public long PersistedAccessTicks;

    /// <summary>Open while references are held; null otherwise.</summary>
    public SafeFileHandle? Handle => _handle;

    public bool IsRemoved
    {
        get
        {
            lock (_gate)
            {
                return _removed;
            }
        }
    }

    /// <summary>A racy read for choosing eviction candidates; <see cref="TryMarkEvicted"/> decides.</summary>
    public bool IsPinned => Volatile.Read(ref _refs) > 0;

    /// <summary>Takes a reference, opening the file on the first one.</summary>
    public AcquireResult TryAcquire(string path)
    {
        lock (_gate)
        {
            if (_removed)
            {
                return AcquireResult.Removed;
            }
            if (_handle is null)
            {
                try
                {
                    _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                }
                catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
                {
                    // Someone removed the file behind our back: forget the chunk, refetch it.
                    _removed = true;
                    return AcquireResult.Missing;
                }
            }
            _refs++;
            return AcquireResult.Acquired;
        }
    }

    /// <summary>Installs the handle of a freshly written chunk with the flight's reference.</summary>
    public void InitializePinned(SafeFileHandle handle)
    {
        lock (_gate)
        {
            _handle = handle;
            _refs = 1;
        }
    }

    public override void HandOff(int receivers)
    {
        lock (_gate)
        {
            _refs += receivers - 1;
            CloseIfIdle();
        }
    }

    public override void Release()
    {
        lock (_gate)
        {
            _refs--;
            CloseIfIdle();
        }
    }

    /// <summary>Claims an unpinned entry for eviction; false when it is leased or already gone.</summary>
    public bool TryMarkEvicted()
    {
        lock (_gate)
        {
            if (_refs > 0 || _removed)
            {
                return false;
            }
            _removed = true;
            return true;
        }
    }

    /// <summary>
    /// Marks an entry whose file was replaced (renamed over) or lost. Outstanding leases keep
    /// reading the old inode through their open handle; no new lease is given.
    /// </summary>
    public void MarkRemoved()
    {
        lock (_gate)
        {
            _removed = true;
        }
    }

    private void CloseIfIdle()
    {
        if (_refs == 0 && _handle is not null)
        {
            _handle.Dispose();
            _handle = null;
        }
    }
}

internal enum AcquireResult
{
    Acquired,
    Removed,
    Missing,
}

/// <summary>A fetched chunk that could not be written (disk full, I/O error): its waiters read it from the fetch buffer.</summary>
internal sealed class MemoryChunk(ChunkKey key, BudgetLease buffer) : ChunkSource(key, buffer.Length)
{
    private int _refs = 1;

    public ReadOnlyMemory<byte> Data => buffer.Memory;

    public override void HandOff(int receivers)
    {
        if (Interlocked.Add(ref _refs, receivers - 1) == 0)
        {
            buffer.Dispose();
        }
    }

    public override void Release()
    {
        if (Interlocked.Decrement(ref _refs) == 0)
        {
            buffer.Dispose();
        }
    }
}
