namespace CsiCache.Cache.Tests;

public sealed class BufferBudgetTests
{
    private const int MiB = 1 << 20;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Acquire_WithinLimit_GrantsAtOnceWithBufferOfExactLength()
    {
        var budget = new BufferBudget(4 * MiB);
        using BudgetLease lease = await budget.AcquireAsync(MiB + 5, Ct);
        Assert.Equal(MiB + 5, lease.Memory.Length);
        // The pool rounds up to a power of two, and the budget charges what is really held.
        Assert.Equal(2 * MiB, budget.InUseBytes);
    }

    [Fact]
    public async Task Acquire_OverLimit_WaitsUntilBytesComeBack()
    {
        var budget = new BufferBudget(2 * MiB);
        BudgetLease first = await budget.AcquireAsync(MiB, Ct);
        BudgetLease second = await budget.AcquireAsync(MiB, Ct);
        ValueTask<BudgetLease> third = budget.AcquireAsync(MiB, Ct);
        Assert.False(third.IsCompleted);
        Assert.Equal(1, budget.WaitingCount);

        first.Dispose();
        using BudgetLease granted = await third.AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal(2 * MiB, budget.InUseBytes);
        second.Dispose();
        Assert.Equal(MiB, budget.InUseBytes);
    }

    [Fact]
    public async Task Acquire_Waiters_AreServedFirstComeFirstServed()
    {
        var budget = new BufferBudget(4 * MiB);
        BudgetLease all = await budget.AcquireAsync(4 * MiB, Ct);
        var order = new List<int>();
        ValueTask<BudgetLease> big = budget.AcquireAsync(4 * MiB, Ct);
        ValueTask<BudgetLease> small = budget.AcquireAsync(MiB, Ct);
        Task<BudgetLease> bigDone = big.AsTask().ContinueWith(t => { lock (order) { order.Add(1); } return t.Result; }, Ct, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        Task<BudgetLease> smallDone = small.AsTask().ContinueWith(t => { lock (order) { order.Add(2); } return t.Result; }, Ct, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        all.Dispose();
        BudgetLease bigLease = await bigDone.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        // The small request queued behind the big one and does not overtake it, though it would fit first.
        Assert.False(smallDone.IsCompleted);
        bigLease.Dispose();
        (await smallDone.WaitAsync(TimeSpan.FromSeconds(10), Ct)).Dispose();
        Assert.Equal([1, 2], order);
        Assert.Equal(0, budget.InUseBytes);
    }

    [Fact]
    public async Task Acquire_LargerThanLimit_IsClampedAndRunsAlone()
    {
        var budget = new BufferBudget(MiB);
        using (BudgetLease huge = await budget.AcquireAsync(3 * MiB, Ct))
        {
            Assert.Equal(3 * MiB, huge.Memory.Length);
            Assert.Equal(MiB, budget.InUseBytes);
            ValueTask<BudgetLease> next = budget.AcquireAsync(1, Ct);
            Assert.False(next.IsCompleted);
            huge.Dispose();
            (await next).Dispose();
        }
        Assert.Equal(0, budget.InUseBytes);
    }

    [Fact]
    public async Task Acquire_CancelledWhileWaiting_LeavesTheQueueAndLetsOthersThrough()
    {
        var budget = new BufferBudget(MiB);
        BudgetLease held = await budget.AcquireAsync(MiB, Ct);
        using var cts = new CancellationTokenSource();
        ValueTask<BudgetLease> cancelled = budget.AcquireAsync(MiB, cts.Token);
        ValueTask<BudgetLease> behind = budget.AcquireAsync(MiB, Ct);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await cancelled);
        Assert.Equal(1, budget.WaitingCount);

        held.Dispose();
        (await behind.AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct)).Dispose();
        Assert.Equal(0, budget.InUseBytes);
        Assert.Equal(0, budget.WaitingCount);
    }

    [Fact]
    public async Task Acquire_ManyConcurrent_NeverExceedsLimit()
    {
        var budget = new BufferBudget(3 * MiB);
        long inUse = 0;
        long max = 0;
        await Parallel.ForAsync(0, 200, Ct, async (i, ct) =>
        {
            using BudgetLease lease = await budget.AcquireAsync(MiB / 2 + (i % 3) * MiB / 4, ct);
            long now = Interlocked.Add(ref inUse, lease.Memory.Length);
            long seen;
            while ((seen = Interlocked.Read(ref max)) < now && Interlocked.CompareExchange(ref max, now, seen) != seen)
            {
            }
            await Task.Yield();
            Interlocked.Add(ref inUse, -lease.Memory.Length);
        });
        Assert.True(max <= 3 * MiB, $"{max} bytes held at once");
        Assert.True(budget.PeakBytes <= 3 * MiB);
        Assert.Equal(0, budget.InUseBytes);
    }
}
