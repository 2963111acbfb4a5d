using System.Text.Json;
using CsiCache.Controller;

namespace CsiCache.Node;

/// <summary>A volume staged on this node: where, and with which capability.</summary>
public sealed record StagedVolume(string VolumeId, VolumeKind Kind, string StagingPath, string CapabilityKey);

/// <summary>
/// A volume published into a pod: where, and whether read-only. An ephemeral (inline) volume
/// has no staging step: its dataset is mounted straight at the target.
/// </summary>
public sealed record PublishedVolume(string VolumeId, string TargetPath, bool ReadOnly, bool Ephemeral = false);

/// <summary>
/// What this node plugin has staged and published, kept in <c>--state-dir</c> and rewritten
/// atomically on every change, so a restarted plugin knows what it owns and can unstage it.
/// The mount table stays the truth about what is mounted; at start we drop records whose
/// mounts are gone (see <see cref="Reconcile"/>).
/// </summary>
public sealed class NodeState
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly string _path;
    private readonly Lock _lock = new();
    private Snapshot _snapshot;

    public NodeState(string stateDirectory)
    {
        Directory.CreateDirectory(stateDirectory);
        _path = Path.Combine(stateDirectory, "node-state.json");
        _snapshot = File.Exists(_path)
            ? JsonSerializer.Deserialize<Snapshot>(File.ReadAllBytes(_path), Json) ?? Snapshot.Empty
            : Snapshot.Empty;
    }

    public StagedVolume? FindStaged(string volumeId)
    {
        lock (_lock)
        {
            return _snapshot.Staged.FirstOrDefault(s => s.VolumeId == volumeId);
        }
    }

    public IReadOnlyList<StagedVolume> Staged()
    {
        lock (_lock)
        {
            return _snapshot.Staged;
        }
    }

    public IReadOnlyList<PublishedVolume> Published()
    {
        lock (_lock)
        {
            return _snapshot.Published;
        }
    }

    public PublishedVolume? FindPublished(string targetPath)
    {
        lock (_lock)
        {
            return _snapshot.Published.FirstOrDefault(p => p.TargetPath == targetPath);
        }
    }

    public void SetStaged(StagedVolume staged) =>
        Update(s => s with { Staged = [.. s.Staged.Where(x => x.VolumeId != staged.VolumeId), staged] });

    public void RemoveStaged(string volumeId) =>
        Update(s => s with { Staged = [.. s.Staged.Where(x => x.VolumeId != volumeId)] });

    public void SetPublished(PublishedVolume published) =>
        Update(s => s with { Published = [.. s.Published.Where(x => x.TargetPath != published.TargetPath), published] });

    public void RemovePublished(string targetPath) =>
        Update(s => s with { Published = [.. s.Published.Where(x => x.TargetPath != targetPath)] });

    /// <summary>
    /// Drops records whose mounts no longer exist (a node reboot, an admin's umount), returning
    /// what was dropped so the caller can log it. Records whose mounts exist are kept: they are
    /// ours to unstage when kubelet asks.
    /// </summary>
    public IReadOnlyList<string> Reconcile(Func<string, bool> isMountPoint, Func<StagedVolume, bool>? keepUnmounted = null)
    {
        var dropped = new List<string>();
        Update(s =>
        {
            var staged = s.Staged.Where(x => isMountPoint(x.StagingPath) || (keepUnmounted?.Invoke(x) ?? false)).ToList();
            var published = s.Published.Where(x => isMountPoint(x.TargetPath)).ToList();
            dropped.AddRange(s.Staged.Except(staged).Select(x => $"staged {x.VolumeId} at {x.StagingPath}"));
            dropped.AddRange(s.Published.Except(published).Select(x => $"published {x.VolumeId} at {x.TargetPath}"));
            return new Snapshot(staged, published);
        });
        return dropped;
    }

    private void Update(Func<Snapshot, Snapshot> change)
    {
        lock (_lock)
        {
            var next = change(_snapshot);
            AtomicFile.Write(_path, JsonSerializer.SerializeToUtf8Bytes(next, Json));
            _snapshot = next;
        }
    }

    private sealed record Snapshot(IReadOnlyList<StagedVolume> Staged, IReadOnlyList<PublishedVolume> Published)
    {
        public static readonly Snapshot Empty = new([], []);
    }
}
