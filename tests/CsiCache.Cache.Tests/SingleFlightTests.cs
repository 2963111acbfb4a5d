namespace CsiCache.Cache.Tests;

public sealed class SingleFlightTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Run_ConcurrentCallersOfOneKey_ShareOneExecution()
    {
        var flights = new SingleFlight<string, int>();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int runs = 0;
        Func<string, CancellationToken, ValueTask<int>> work = async (key, ct) =>
        {
            Interlocked.Increment(ref runs);
            await gate.Task;
            return key.Length;
        };

        var calls = Enumerable.Range(0, 20).Select(_ => flights.RunAsync("abc", work, Ct).AsTask()).ToArray();
        Assert.Equal(1, flights.Count);
        gate.SetResult();
        int[] results = await Task.WhenAll(calls);

        Assert.Equal(1, runs);
        Assert.All(results, r => Assert.Equal(3, r));
        Assert.Equal(0, flights.Count);
    }

    [Fact]
    public async Task Run_DifferentKeys_RunSeparately()
    {
        var flights = new SingleFlight<int, int>();
        int runs = 0;
        int[] results = await Task.WhenAll(Enumerable.Range(0, 10).Select(i =>
            flights.RunAsync(i, (k, _) => { Interlocked.Increment(ref runs); return ValueTask.FromResult(k * 2); }, Ct).AsTask()));
        Assert.Equal(10, runs);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => i * 2), results);
    }

    [Fact]
    public async Task Run_AfterCompletion_KeyRunsAgain()
    {
        var flights = new SingleFlight<string, int>();
        int runs = 0;
        Func<string, CancellationToken, ValueTask<int>> work = (_, _) => ValueTask.FromResult(Interlocked.Increment(ref runs));
        Assert.Equal(1, await flights.RunAsync("k", work, Ct));
        Assert.Equal(2, await flights.RunAsync("k", work, Ct));
    }

    [Fact]
    public async Task OnCompleted_GetsTheNumberOfReceivers()
    {
        var counts = new List<int>();
        var flights = new SingleFlight<string, string>((_, n) => counts.Add(n));
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var leaver = new CancellationTokenSource();
        Func<string, CancellationToken, ValueTask<string>> work = async (k, _) =>
        {
            await gate.Task;
            return k;
        };
        ValueTask<string> a = flights.RunAsync("x", work, Ct);
        ValueTask<string> b = flights.RunAsync("x", work, Ct);
        ValueTask<string> c = flights.RunAsync("x", work, leaver.Token);
        await leaver.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await c);
        gate.SetResult();
        Assert.Equal("x", await a);
        Assert.Equal("x", await b);
        Assert.Equal([2], counts);
    }
}
