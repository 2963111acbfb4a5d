namespace CsiCache.Datasets;

/// <summary>One mounted dataset: a FUSE session over one origin, sharing the host's caches.</summary>
public sealed class DatasetMount : IAsyncDisposable
{
    private DatasetMount(string mountPoint) => MountPoint = mountPoint;

    /// <summary>Where the dataset is mounted.</summary>
    public string MountPoint { get; }

    /// <summary>True while the FUSE session runs and the mount is present.</summary>
    public bool IsAlive => throw new NotImplementedException();

    /// <summary>This mount's counters.</summary>
    public DatasetMountStats GetStats() => throw new NotImplementedException();

    /// <summary>Unmounts and stops the session; idempotent.</summary>
    public Task StopAsync() => throw new NotImplementedException();

    public async ValueTask DisposeAsync() => await StopAsync();
}
