using System.Runtime.InteropServices;
using CsiCache.Controller;

namespace CsiCache.Node.Staging;

/// <summary>
/// A dataset's FUSE server lives in the plugin process, so when the plugin dies its mounts stay
/// in the mount table with nobody behind them: every access answers ENOTCONN ("Transport
/// endpoint is not connected"). A restarted plugin removes those at the staging paths it
/// recorded (bind mounts of the dead session) and under its session directory, before the node
/// service reconciles its state, so the records are dropped and the next NodeStageVolume mounts
/// afresh instead of finding a dead mount "already staged".
/// </summary>
/// <remarks>
/// Only FUSE mounts whose server is gone are touched: the probe is statvfs(3), which FUSE always
/// forwards to the server, so a dead connection shows at once (ENOTCONN/ECONNABORTED). Bind
/// mounts of a dead session in pods' target paths are left: the pod sees an honest I/O error
/// until kubelet unpublishes it, which unmounts them as usual.
/// </remarks>
public static class StaleDatasetMounts
{
    private const int ENOTCONN = 107;
    private const int ECONNABORTED = 103;

    /// <summary>Removes dead FUSE mounts at the staging paths of recorded dataset volumes; returns the paths cleaned.</summary>
    public static IReadOnlyList<string> Cleanup(NodeState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var cleaned = new List<string>();
        foreach (var staged in state.Staged())
        {
            if (staged.Kind == VolumeKind.Dataset && CleanupAt(staged.StagingPath))
            {
                cleaned.Add(staged.StagingPath);
            }
        }

        return cleaned;
    }

    /// <summary>Removes dead FUSE mounts at the directories directly under <paramref name="sessionRoot"/> (where sessions are mounted) and the emptied directories.</summary>
    public static IReadOnlyList<string> CleanupUnder(string sessionRoot)
    {
        var cleaned = new List<string>();
        if (!Directory.Exists(sessionRoot))
        {
            return cleaned;
        }

        foreach (var directory in Directory.EnumerateDirectories(sessionRoot))
        {
            if (CleanupAt(directory))
            {
                cleaned.Add(directory);
            }

            if (!MountTable.IsMountPoint(directory) && !Directory.EnumerateFileSystemEntries(directory).Any())
            {
                Directory.Delete(directory);
            }
        }

        return cleaned;
    }

    /// <summary>Unmounts dead FUSE mounts stacked at <paramref name="path"/>; true when any was removed.</summary>
    public static bool CleanupAt(string path)
    {
        var removed = false;
        // Mounts can stack; stop at the first live or non-FUSE one, and never loop for ever.
        for (var i = 0; i < 16; i++)
        {
            var top = MountTable.Find(path);
            if (top is null || !IsFuse(top) || IsAlive(path))
            {
                break;
            }

            Mounter.Unmount(path);
            removed = true;
        }

        return removed;
    }

    /// <summary>True for fuse, fuse.SUBTYPE and fuseblk mounts.</summary>
    public static bool IsFuse(MountEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return entry.FileSystemType is "fuse" or "fuseblk" || entry.FileSystemType.StartsWith("fuse.", StringComparison.Ordinal);
    }

    /// <summary>False when the FUSE connection behind <paramref name="path"/> is gone.</summary>
    public static bool IsAlive(string path)
    {
        if (Native.StatVfs(path, out _) == 0)
        {
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno is not (ENOTCONN or ECONNABORTED);
    }
}
