using System.Collections.Concurrent;

namespace CsiCache.Fuse;

/// <summary>
/// Reply buffers for READ (header + up to max_read bytes), pinned so the write(2) of a reply never
/// pins, and bounded: past <c>capacity</c> buffers in use, a reader waits for one to come back,
/// which caps the memory held by slow reads.
/// </summary>
/// <remarks>
/// Not disposable on purpose: a read still pending when its session ends returns its buffer
/// later, and the semaphore must still work then (SemaphoreSlim holds no kernel handle unless its
/// wait handle is asked for).
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "See remarks: must outlive its owner.")]
internal sealed class ReadBufferPool
{
    private readonly ConcurrentQueue<byte[]> _free = new();
    private readonly SemaphoreSlim _slots;
    private readonly int _bufferSize;

    public ReadBufferPool(int bufferSize, int capacity)
    {
        _bufferSize = bufferSize;
        _slots = new SemaphoreSlim(capacity, capacity);
    }

    public byte[] Rent(CancellationToken cancellationToken)
    {
        _slots.Wait(cancellationToken);
        return _free.TryDequeue(out byte[]? buffer)
            ? buffer
            : GC.AllocateUninitializedArray<byte>(_bufferSize, pinned: true);
    }

    public void Return(byte[] buffer)
    {
        _free.Enqueue(buffer);
        _slots.Release();
    }
}
