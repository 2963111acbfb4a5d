namespace CsiCache.Node;

/// <summary>
/// Starts and stops the FUSE session that serves a dataset volume at its staging path. The
/// node service validates and records; the stager owns the session, the cache and the origin.
/// </summary>
public interface IDatasetStager
{
    /// <summary>Mounts the dataset at <paramref name="stagingPath"/>, or throws with a clear reason; never leaves a half-mounted path.</summary>
    Task StageAsync(string volumeId, IReadOnlyDictionary<string, string> volumeContext,
        IReadOnlyDictionary<string, string> secrets, string stagingPath, CancellationToken ct);

    /// <summary>Stops the session and unmounts; a volume that is not staged is not an error.</summary>
    Task UnstageAsync(string volumeId, string stagingPath, CancellationToken ct);

    /// <summary>True while the volume's FUSE session is alive and answering.</summary>
    bool IsServing(string volumeId);

    /// <summary>Bytes of the node cache currently held for this volume's dataset, if known.</summary>
    long? CachedBytes(string volumeId);
}
