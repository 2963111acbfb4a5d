using CsiCache.Origins.Internal;

namespace CsiCache.Origins.Tests;

public class RetryPolicyTests
{
    private static readonly OriginOptions Options = new()
    {
        RequestTimeout = TimeSpan.FromMilliseconds(200),
        MaxRetries = 3,
        RetryBaseDelay = TimeSpan.FromMilliseconds(100),
        RetryMaxDelay = TimeSpan.FromMilliseconds(350),
    };

    [Theory]
    [InlineData(0, 50, 100)]
    [InlineData(1, 100, 200)]
    [InlineData(2, 175, 350)]   // 400 capped to 350, then half of it is jitter
    [InlineData(10, 175, 350)]
    public void Backoff_ExponentialWithJitterAndCap(int attempt, double minMs, double maxMs)
    {
        var policy = new RetryPolicy(Options);
        for (int i = 0; i < 200; i++)
        {
            double ms = policy.Backoff(attempt, null).TotalMilliseconds;
            Assert.InRange(ms, minMs, maxMs);
        }
    }

    [Fact]
    public void Backoff_RetryAfterHonouredUpToTheCap()
    {
        var policy = new RetryPolicy(Options);
        Assert.InRange(policy.Backoff(0, TimeSpan.FromMilliseconds(300)).TotalMilliseconds, 300, 300);
        Assert.InRange(policy.Backoff(0, TimeSpan.FromSeconds(60)).TotalMilliseconds, 350, 350);
    }

    [Fact]
    public async Task Execute_TransientThenSuccess_Retries()
    {
        var policy = new RetryPolicy(Options with { RetryBaseDelay = TimeSpan.Zero });
        int calls = 0;
        int result = await policy.ExecuteAsync("op", "x", 0, (_, _) =>
        {
            calls++;
            return calls < 3 ? throw new HttpRequestException("reset") : Task.FromResult(42);
        }, TestContext.Current.CancellationToken);
        Assert.Equal(42, result);
        Assert.Equal(3, calls);
    }

    [Fact]
    public async Task Execute_NonTransientOriginError_NotRetried()
    {
        var policy = new RetryPolicy(Options);
        int calls = 0;
        await Assert.ThrowsAsync<OriginNotFoundException>(() => policy.ExecuteAsync<int, int>("op", "x", 0, (_, _) =>
        {
            calls++;
            throw new OriginNotFoundException("gone");
        }, TestContext.Current.CancellationToken));
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task Execute_AttemptHangs_EachAttemptTimesOutThenUnavailable()
    {
        var policy = new RetryPolicy(Options with { RetryBaseDelay = TimeSpan.Zero });
        int calls = 0;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<OriginUnavailableException>(() => policy.ExecuteAsync("op", "x", 0, async (_, t) =>
        {
            calls++;
            await Task.Delay(Timeout.Infinite, t);
            return 0;
        }, TestContext.Current.CancellationToken));
        Assert.Equal(Options.MaxRetries + 1, calls);
        Assert.Contains("no answer within", e.Message);
        Assert.True(sw.Elapsed >= Options.RequestTimeout * (Options.MaxRetries + 1) - TimeSpan.FromMilliseconds(50));
    }

    [Fact]
    public async Task Execute_CallerCancels_OperationCanceledNotUnavailable()
    {
        var policy = new RetryPolicy(Options with { RequestTimeout = TimeSpan.FromSeconds(30) });
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => policy.ExecuteAsync("op", "x", 0, async (_, t) =>
        {
            await Task.Delay(Timeout.Infinite, t);
            return 0;
        }, cts.Token));
    }

    [Theory]
    [InlineData(0, 3)]
    [InlineData(-1, 3)]
    [InlineData(1001, 3)]
    public void Options_Invalid_Refused(int pageSize, int retries)
    {
        var options = new OriginOptions { ListPageSize = pageSize, MaxRetries = retries };
        Assert.Throws<ArgumentOutOfRangeException>(options.Validate);
    }
}

public class LayeringTests
{
    [Fact]
    public void Origins_ReferencesNoOtherCsiCacheAssembly()
    {
        // DESIGN: Origins knows nothing of FUSE, the cache or CSI.
        var references = typeof(IOrigin).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.Contains("AWSSDK.S3", references);
        Assert.DoesNotContain(references, name => name.StartsWith("CsiCache.", StringComparison.Ordinal));
    }
}
