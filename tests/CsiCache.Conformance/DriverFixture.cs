namespace CsiCache.Conformance;

/// <summary>One driver process shared by the tests of a class.</summary>
public sealed class DriverFixture : IAsyncLifetime
{
    public PluginProcess Driver { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Driver = await PluginProcess.StartAsync();

    public async ValueTask DisposeAsync() => await Driver.DisposeAsync();
}
