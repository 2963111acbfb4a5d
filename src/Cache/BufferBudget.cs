using System.Buffers;
using System.Numerics;

namespace CsiCache.Cache;

/// <summary>
/// Bounds the bytes of fetch buffers in flight. A caller that would exceed the limit waits its
/// turn (first come, first served) instead of failing: a hard memory bound is a product goal,
/// and ENOMEM from a read is the behaviour to avoid. A request larger than the limit is clamped
/// to the limit, so it runs alone rather than never.
/// </summary>
/// <remarks>
/// Buffers come from a pool private to the budget, so memory held by idle pooled buffers is
/// bounded by the same figure and not shared with <see cref="ArrayPool{T}.Shared"/>, whose
/// retention we cannot bound. A lease charges the pooled array's real length (the pool rounds
/// up to a power of two), because that is what the process holds.
/// </remarks>
public sealed class BufferBudget
{
    private readonly object _gate = new();
    private readonly LinkedList<Waiter> _queue = new();
    private readonly ArrayPool<byte> _pool;
    private readonly int _maxPooledLength;
    private long _inUse;
    private long _peak;

    /// <param name="limitBytes">Bytes that may be held at once.</param>
    /// <param name="maxBufferSize">Largest buffer the private pool keeps (larger ones are allocated and dropped).</param>
    public BufferBudget(long limitBytes, int maxBufferSize = ChunkCacheOptions.MaxChunkSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limitBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBufferSize);
        LimitBytes = limitBytes;
        _maxPooledLength = (int)Math.Min(Array.MaxLength, (long)BitOperations.RoundUpToPowerOf2((uint)maxBufferSize));
        // Enough pooled arrays of the largest size to fill the limit; smaller buckets hold as many.
        int perBucket = (int)Math.Clamp(limitBytes / _maxPooledLength, 1, 1024);
        _pool = ArrayPool<byte>.Create(_maxPooledLength, perBucket);
    }

    /// <summary>The bound.</summary>
    public long LimitBytes { get; }

    /// <summary>Bytes held by outstanding leases.</summary>
    public long InUseBytes => Volatile.Read(ref _inUse);

    /// <summary>Most bytes ever held at once.</summary>
    public long PeakBytes => Volatile.Read(ref _peak);

    /// <summary>Callers waiting for budget now.</summary>
    public int WaitingCount
    {
        get
        {
            lock (_gate)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>
    /// Waits until <paramref name="bytes"/> fit under the limit, then returns a lease holding a
    /// buffer of exactly that length. Dispose the lease to give the bytes back.
    /// </summary>
    public ValueTask<BudgetLease> AcquireAsync(int bytes, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        ct.ThrowIfCancellationRequested();
        long charge = Math.Min(ChargeFor(bytes), LimitBytes);

        Waiter waiter;
        lock (_gate)
        {
            // FIFO: nobody overtakes a queued waiter, so a large request is never starved by small ones.
            if (_queue.Count == 0 && _inUse + charge <= LimitBytes)
            {
                Take(charge);
                return ValueTask.FromResult(CreateLease(bytes, charge));
            }
            waiter = new Waiter(this, charge);
            waiter.Node = _queue.AddLast(waiter);
        }
        return WaitAsync(waiter, bytes, ct);
    }

    private async ValueTask<BudgetLease> WaitAsync(Waiter waiter, int bytes, CancellationToken ct)
    {
        using (ct.UnsafeRegister(static state => ((Waiter)state!).Cancel(), waiter))
        {
            try
            {
#pragma warning disable VSTHRD003 // The completion source is ours, completed by Release; there is no synchronization context to deadlock.
                await waiter.Granted.Task.ConfigureAwait(false);
#pragma warning restore VSTHRD003
            }
            catch (OperationCanceledException)
            {
                // Report the caller's token, not the internal completion source's.
                ct.ThrowIfCancellationRequested();
                throw;
            }
        }
        return CreateLease(bytes, waiter.Charge);
    }

    private void CancelWaiter(Waiter waiter)
    {
        lock (_gate)
        {
            if (waiter.Node?.List is null)
            {
                return; // already granted
            }
            bool wasHead = _queue.First == waiter.Node;
            _queue.Remove(waiter.Node);
            waiter.Node = null;
            waiter.Granted.TrySetCanceled();
            if (wasHead)
            {
                GrantWaiters();
            }
        }
    }

    internal void Release(long charge)
    {
        lock (_gate)
        {
            _inUse -= charge;
            GrantWaiters();
        }
    }

    internal void Return(byte[] array)
    {
        // Zero-length arrays are the shared empty array, not the pool's to take back.
        if (array.Length > 0 && array.Length <= _maxPooledLength)
        {
            _pool.Return(array);
        }
    }

    private void GrantWaiters()
    {
        // Called under _gate. Grants in order while the head fits; TrySetResult runs the
        // continuation elsewhere (RunContinuationsAsynchronously), not under the lock.
        while (_queue.First is { } head && _inUse + head.Value.Charge <= LimitBytes)
        {
            _queue.RemoveFirst();
            head.Value.Node = null;
            Take(head.Value.Charge);
            head.Value.Granted.TrySetResult();
        }
    }

    private void Take(long charge)
    {
        _inUse += charge;
        if (_inUse > _peak)
        {
            Volatile.Write(ref _peak, _inUse);
        }
    }

    private long ChargeFor(int bytes) =>
        bytes == 0 ? 0 : bytes <= _maxPooledLength ? (long)BitOperations.RoundUpToPowerOf2((uint)bytes) : bytes;

    private BudgetLease CreateLease(int bytes, long charge)
    {
        byte[] array = bytes <= _maxPooledLength ? _pool.Rent(bytes) : GC.AllocateUninitializedArray<byte>(bytes);
        return new BudgetLease(this, array, bytes, charge);
    }

    private sealed class Waiter(BufferBudget budget, long charge)
    {
        public void Cancel() => budget.CancelWaiter(this);

        public long Charge { get; } = charge;

        public TaskCompletionSource Granted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Waiter>? Node { get; set; }
    }
}

/// <summary>Bytes granted by a <see cref="BufferBudget"/> with the buffer that holds them. Dispose exactly once.</summary>
public sealed class BudgetLease : IDisposable
{
    private readonly BufferBudget _budget;
    private byte[]? _array;
    private readonly long _charge;

    internal BudgetLease(BufferBudget budget, byte[] array, int length, long charge)
    {
        _budget = budget;
        _array = array;
        Length = length;
        _charge = charge;
    }

    /// <summary>Bytes asked for.</summary>
    public int Length { get; }

    /// <summary>The buffer, exactly <see cref="Length"/> bytes. Its contents are not cleared.</summary>
    public Memory<byte> Memory => new(_array ?? throw new ObjectDisposedException(nameof(BudgetLease)), 0, Length);

    /// <summary>Gives the bytes back to the budget and the buffer to the pool.</summary>
    public void Dispose()
    {
        byte[]? array = Interlocked.Exchange(ref _array, null);
        if (array is not null)
        {
            _budget.Return(array);
            _budget.Release(_charge);
        }
    }
}
