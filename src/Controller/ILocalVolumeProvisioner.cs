namespace CsiCache.Controller;

/// <summary>
/// Makes and removes local volumes on this node. Implemented by the node plugin (which owns
/// the local directory); the controller service only decides sizes and idempotency.
/// </summary>
public interface ILocalVolumeProvisioner
{
    /// <summary>The node this provisioner's volumes live on.</summary>
    string NodeId { get; }

    /// <summary>Smallest volume we make: ext4 needs room for its journal and metadata.</summary>
    long MinimumBytes { get; }

    VolumeRecord? Find(string volumeId);

    IReadOnlyList<VolumeRecord> List();

    /// <summary>Creates the volume's image; the caller has checked the name is free and the size fits.</summary>
    Task<VolumeRecord> CreateAsync(string volumeId, string name, long capacityBytes, CancellationToken cancellationToken);

    /// <summary>Removes the volume's image; FAILED_PRECONDITION if it is still staged.</summary>
    Task DeleteAsync(string volumeId, CancellationToken cancellationToken);

    /// <summary>Bytes a new volume could take on this node.</summary>
    long AvailableBytes();
}
