namespace CsiCache.Cache;

/// <summary>
/// Where <see cref="ChunkCacheOptions.RootDirectory"/> lives. The cache code is the same on both:
/// the caller picks a directory on the node's NVMe (<see cref="Disk"/>) or on a tmpfs mount
/// (<see cref="Memory"/>, for the <c>cacheMedium: memory</c> volume parameter). The only
/// difference it makes is that fsync before rename is skipped on tmpfs, where it buys nothing
/// (tmpfs is gone after a reboot anyway and its fsync is a no-op), and that the figure is reported.
/// A tmpfs cache's bytes count against the node's memory (and the pod's memory cgroup when the
/// tmpfs is charged to it), so its quota must be sized with that in mind.
/// </summary>
public enum CacheMedium
{
    /// <summary>A directory on a block device (ext4/xfs on NVMe).</summary>
    Disk,

    /// <summary>A directory on tmpfs.</summary>
    Memory,
}
