namespace CsiCache.EndToEnd;

/// <summary>One plugin process shared by the tests of a class.</summary>
public sealed class PluginFixture : IAsyncLifetime
{
    public PluginProcess Plugin { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Plugin = await PluginProcess.StartAsync();

    public async ValueTask DisposeAsync() => await Plugin.DisposeAsync();
}

/// <summary>A plugin process and an S3 server, shared by the S3 tests.</summary>
public sealed class S3Fixture : IAsyncLifetime
{
    public PluginProcess Plugin { get; private set; } = null!;
    public S3Server S3 { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        S3 = await S3Server.StartAsync();
        Plugin = await PluginProcess.StartAsync();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Plugin.DisposeAsync();
        }
        finally
        {
            await S3.DisposeAsync();
        }
    }
}
