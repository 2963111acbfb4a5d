using System.Text.Json;

namespace CsiCache.Controller;

/// <summary>What CreateVolume decided about one volume; enough to answer a retry, List and Validate.</summary>
public sealed record VolumeRecord(
    string VolumeId,
    string Name,
    VolumeKind Kind,
    long CapacityBytes,
    IReadOnlyDictionary<string, string> Context)
{
    /// <summary>True when a repeated CreateVolume with this size range may return this volume.</summary>
    public bool FitsCapacity(long requiredBytes, long limitBytes) =>
        CapacityBytes >= requiredBytes && (limitBytes == 0 || CapacityBytes <= limitBytes);

    /// <summary>True when the volume context (the parameters as normalised) matches.</summary>
    public bool SameContext(IReadOnlyDictionary<string, string> other) =>
        Context.Count == other.Count && Context.All(kv => other.TryGetValue(kv.Key, out var v) && v == kv.Value);
}

/// <summary>
/// Records of dataset volumes. The volume context in the PV is the real database; this store
/// only lets CreateVolume tell a retry from a conflicting request, and backs ListVolumes.
/// With a directory it survives restarts (and ListVolumes is offered); without one it lives in
/// memory, and the controller says so by not offering ListVolumes.
/// </summary>
public sealed class DatasetVolumeStore
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly string? _directory;
    private readonly Dictionary<string, VolumeRecord> _memory = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public DatasetVolumeStore(string? directory)
    {
        _directory = directory;
        if (_directory is not null)
        {
            Directory.CreateDirectory(_directory);
        }
    }

    public bool IsPersistent => _directory is not null;

    public VolumeRecord? Find(string volumeId)
    {
        lock (_lock)
        {
            if (_directory is null)
            {
                return _memory.GetValueOrDefault(volumeId);
            }

            var path = PathOf(volumeId);
            return File.Exists(path) ? JsonSerializer.Deserialize<VolumeRecord>(File.ReadAllBytes(path), Json) : null;
        }
    }

    public void Save(VolumeRecord record)
    {
        lock (_lock)
        {
            if (_directory is null)
            {
                _memory[record.VolumeId] = record;
                return;
            }

            AtomicFile.Write(PathOf(record.VolumeId), JsonSerializer.SerializeToUtf8Bytes(record, Json));
        }
    }

    public void Delete(string volumeId)
    {
        lock (_lock)
        {
            if (_directory is null)
            {
                _memory.Remove(volumeId);
                return;
            }

            File.Delete(PathOf(volumeId));
        }
    }

    public IReadOnlyList<VolumeRecord> List()
    {
        lock (_lock)
        {
            if (_directory is null)
            {
                return [.. _memory.Values];
            }

            return [.. Directory.EnumerateFiles(_directory, "*.json")
                .Select(f => JsonSerializer.Deserialize<VolumeRecord>(File.ReadAllBytes(f), Json))
                .OfType<VolumeRecord>()];
        }
    }

    private string PathOf(string volumeId) => Path.Combine(_directory!, volumeId + ".json");
}

/// <summary>Writes a file so that a reader (or a crash) sees the old content or the new, never a mix.</summary>
public static class AtomicFile
{
    public static void Write(string path, ReadOnlySpan<byte> content)
    {
        var temp = $"{path}.tmp-{Environment.ProcessId}-{Environment.CurrentManagedThreadId}";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(content);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }
}
