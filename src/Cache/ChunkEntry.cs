using System.Collections.Concurrent;
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
/// One chunk in the index: a range of its object's file. The reference count is what "pinned"
/// means: eviction takes only objects none of whose chunks has references. The file is opened on
/// the first reference and, once idle, kept
/// open in a bounded <see cref="IdleHandles"/> queue, so repeated reads of a hot chunk cost one
/// pread and no open/close, while an idle cache of 100k chunks holds only a bounded number of fds.
/// </summary>
internal sealed class ChunkEntry : ChunkSource
{
    private readonly Lock _gate = new();
    private readonly IdleHandles _idle;
    private int _refs;
    private bool _removed;
    private bool _idleQueued;
    private SafeFileHandle? _handle;

    public ChunkEntry(ChunkKey key, int length, long fileOffset, long persistedAccessTicks, IdleHandles idle, ChunkBlocks blocks, ulong present)
        : base(key, length)
    {
        FileOffset = fileOffset;
        PersistedAccessTicks = persistedAccessTicks;
        _idle = idle;
        Blocks = blocks;
        Present = present & blocks.All(length);
        PresentBytes = blocks.Bytes(Present, length);
    }

    /// <summary>Where the chunk starts in its object's file.</summary>
    public long FileOffset { get; }

    /// <summary>How the chunk divides into blocks, the unit of a partial chunk.</summary>
    public ChunkBlocks Blocks { get; }

    /// <summary>
    /// Which blocks of the chunk are stored (bit b: block b). Every block, for a chunk fetched
    /// whole; some, for one a random reader fetched in ranges. Fixed for the entry's life: a
    /// store that adds blocks indexes a new entry in this one's place.
    /// </summary>
    public ulong Present { get; }

    /// <summary>Bytes of the chunk that are stored: what it counts against the quota.</summary>
    public long PresentBytes { get; }

    /// <summary>Every block is stored: the chunk can be leased, read whole, and backs a passthrough file.</summary>
    public bool IsFull => Present == Blocks.All(Length);

    /// <summary>Whether the stored blocks hold [<paramref name="offset"/>, +<paramref name="count"/>), clipped to the chunk.</summary>
    public bool Covers(long offset, int count)
    {
        if (offset >= Length || count <= 0)
        {
            return true; // nothing to read there
        }
        ulong need = Blocks.Touched(offset, (int)Math.Min(count, Length - offset));
        return (Present & need) == need;
    }

    /// <summary>Position in the LRU order: a global sequence number, larger is more recent.</summary>
    public long LastAccess;

    /// <summary>UTC ticks of the access time last written to the file's mtime.</summary>
    public long PersistedAccessTicks;

    /// <summary>Open while references are held (and maybe a while after); read it only while holding one.</summary>
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

    /// <summary>Takes a reference, opening the file if it is not open.</summary>
    public AcquireResult TryAcquire(ChunkStore store)
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
                    _handle = ChunkStore.OpenRead(store.GetPath(Key.Object));
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

    public override void HandOff(int receivers) => AddRefs(receivers - 1);

    public override void Release() => AddRefs(-1);

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
            CloseHandle();
            return true;
        }
    }

    /// <summary>
    /// Marks an entry whose chunk was replaced, evicted while leased, or lost. Outstanding leases
    /// keep reading through the open handle (an evicted object's unlinked inode keeps its bytes),
    /// closed with the last of them.
    /// </summary>
    public void MarkRemoved()
    {
        lock (_gate)
        {
            _removed = true;
            if (_refs == 0)
            {
                CloseHandle();
            }
        }
    }

    /// <summary>Called by <see cref="IdleHandles"/> when this entry's turn in the idle queue is over.</summary>
    public void CloseIfIdle()
    {
        lock (_gate)
        {
            _idleQueued = false;
            if (_refs == 0)
            {
                CloseHandle();
            }
        }
    }

    private void AddRefs(int delta)
    {
        bool queue = false;
        lock (_gate)
        {
            _refs += delta;
            if (_refs == 0 && _handle is not null)
            {
                if (_removed)
                {
                    CloseHandle();
                }
                else if (!_idleQueued)
                {
                    _idleQueued = queue = true;
                }
            }
        }
        if (queue)
        {
            _idle.Add(this);
        }
    }

    private void CloseHandle()
    {
        _handle?.Dispose();
        _handle = null;
    }
}

/// <summary>
/// A bounded FIFO of idle chunks that still hold an open fd: when it is full, the oldest entry's
/// fd is closed. FIFO rather than LRU because a hot chunk re-queues itself after every turn.
/// </summary>
internal sealed class IdleHandles(int capacity)
{
    private readonly ConcurrentQueue<ChunkEntry> _queue = new();
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public void Add(ChunkEntry entry)
    {
        _queue.Enqueue(entry);
        if (Interlocked.Increment(ref _count) > capacity && _queue.TryDequeue(out ChunkEntry? oldest))
        {
            Interlocked.Decrement(ref _count);
            oldest.CloseIfIdle();
        }
    }

    /// <summary>Closes every idle fd (dispose).</summary>
    public void Clear()
    {
        while (_queue.TryDequeue(out ChunkEntry? entry))
        {
            Interlocked.Decrement(ref _count);
            entry.CloseIfIdle();
        }
    }
}

/// <summary>
/// A chunk's division into at most 64 blocks of <see cref="Size"/> bytes (the last one of a short
/// chunk shorter), so which of them are stored fits in one <see cref="ulong"/>.
/// </summary>
internal readonly record struct ChunkBlocks(int Size)
{
    public const int MaxBlocks = 64;

    public static ChunkBlocks For(int chunkSize) => new(Math.Max(1, (chunkSize + MaxBlocks - 1) / MaxBlocks));

    /// <summary>Number of blocks of a chunk of <paramref name="length"/> bytes.</summary>
    public int Count(int length) => (length + Size - 1) / Size;

    /// <summary>The bits of every block of a chunk of <paramref name="length"/> bytes.</summary>
    public ulong All(int length) => Span(0, Count(length));

    /// <summary>Blocks that [offset, offset + count) touches, even in part (count &gt; 0).</summary>
    public ulong Touched(long offset, int count) => Span((int)(offset / Size), (int)((offset + count - 1) / Size) + 1);

    /// <summary>Blocks wholly inside [offset, offset + count) of a chunk of <paramref name="length"/> bytes (a block ends at the chunk's end at the latest).</summary>
    public ulong Within(long offset, int count, int length)
    {
        long end = offset + count;
        int first = (int)((offset + Size - 1) / Size);
        int last = end >= length ? Count(length) : (int)(end / Size);
        return Span(first, last);
    }

    /// <summary>Bytes held by the blocks in <paramref name="bits"/> of a chunk of <paramref name="length"/> bytes.</summary>
    public long Bytes(ulong bits, int length)
    {
        long bytes = (long)System.Numerics.BitOperations.PopCount(bits) * Size;
        int count = Count(length);
        if (count > 0 && (bits & (1UL << (count - 1))) != 0)
        {
            bytes -= ((long)count * Size) - length; // the last block is short
        }
        return bytes;
    }

    /// <summary>Bits [from, to).</summary>
    private static ulong Span(int from, int to)
    {
        if (to <= from)
        {
            return 0;
        }
        ulong upTo = to >= MaxBlocks ? ulong.MaxValue : (1UL << to) - 1;
        ulong below = from >= MaxBlocks ? ulong.MaxValue : (1UL << from) - 1;
        return upTo & ~below;
    }
}

internal enum AcquireResult
{
    Acquired,
    Removed,
    Missing,
}

/// <summary>
/// A chunk just written around the page cache (O_DIRECT): stored, indexed and pinned like any
/// entry, but the readers of its flight read the fetch buffer, still in memory, rather than the
/// file, whose bytes are on the device and not in the page cache.
/// </summary>
internal sealed class FreshChunk(ChunkEntry entry, MemoryChunk memory) : ChunkSource(entry.Key, entry.Length)
{
    public ChunkEntry Entry => entry;

    public ReadOnlyMemory<byte> Data => memory.Data;

    public override void HandOff(int receivers)
    {
        entry.HandOff(receivers);
        memory.HandOff(receivers);
    }

    public override void Release()
    {
        entry.Release();
        memory.Release();
    }
}

/// <summary>A fetched chunk that could not be written (disk full, I/O error): its waiters read it from the fetch buffer.</summary>
internal sealed class MemoryChunk(ChunkKey key, BudgetLease buffer) : ChunkSource(key, buffer.Length)
{
    private int _refs = 1;

    public ReadOnlyMemory<byte> Data => buffer.Memory;

    private long _consumed;

    /// <summary>Counts bytes read from it; returns the total so far.</summary>
    public long Consume(int bytes) => Interlocked.Add(ref _consumed, bytes);

    /// <summary>Whether any reader has read from it.</summary>
    public bool WasRead => Volatile.Read(ref _consumed) > 0;

    /// <summary>Takes one more reference; false once the last one is gone (the buffer is back in the budget).</summary>
    public bool TryAddRef()
    {
        int refs = Volatile.Read(ref _refs);
        while (refs > 0)
        {
            int seen = Interlocked.CompareExchange(ref _refs, refs + 1, refs);
            if (seen == refs)
            {
                return true;
            }
            refs = seen;
        }
        return false;
    }

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
