namespace CsiCache.Conformance;

/// <summary>One driver process shared by the tests of a class.</summary>
public sealed class DriverFixture : IAsyncLifetime
{
    public DriverProcess Driver { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Driver = await DriverProcess.StartAsync(null, "--log-level", "Debug");

    public async ValueTask DisposeAsync() => await Driver.DisposeAsync();
}
