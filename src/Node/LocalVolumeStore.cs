using System.Text.Json;
using CsiCache.Controller;
using CsiCache.Csi;
using Grpc.Core;

namespace CsiCache.Node;

/// <summary>
/// Local volumes as files under <c>--local-dir</c>: <c>ID.img</c>, a sparse ext4 image of the
/// volume's size, and <c>ID.json</c>, its record. An image is built under a temporary name and
/// renamed when formatted, so a crash mid-create leaves no half-made volume behind.
/// Images are sparse, so free space is counted net of what existing images may still grow
/// into: we never promise the same bytes twice.
/// </summary>
public sealed class LocalVolumeStore : ILocalVolumeProvisioner
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly string _directory;
    private readonly NodeState _state;

    public LocalVolumeStore(string directory, string nodeId, NodeState state)
    {
        _directory = Path.GetFullPath(directory);
        NodeId = nodeId;
        _state = state;
        Directory.CreateDirectory(_directory);
        foreach (var leftover in Directory.EnumerateFiles(_directory, "*.tmp*"))
        {
            File.Delete(leftover);
        }
    }

    public string NodeId { get; }

    /// <summary>ext4 with a journal needs a few MiB; 16 MiB leaves room for a little data.</summary>
    public long MinimumBytes => 16L << 20;

    public string ImagePath(string volumeId) => Path.Combine(_directory, volumeId + ".img");

    private string RecordPath(string volumeId) => Path.Combine(_directory, volumeId + ".json");

    public VolumeRecord? Find(string volumeId)
    {
        var record = RecordPath(volumeId);
        if (!File.Exists(record) || !File.Exists(ImagePath(volumeId)))
        {
            return null;
        }

        return JsonSerializer.Deserialize<VolumeRecord>(File.ReadAllBytes(record), Json);
    }

    public IReadOnlyList<VolumeRecord> List() =>
        [.. Directory.EnumerateFiles(_directory, "*.json")
            .Select(f => Find(Path.GetFileNameWithoutExtension(f)))
            .OfType<VolumeRecord>()];

    public async Task<VolumeRecord> CreateAsync(string volumeId, string name, long capacityBytes, CancellationToken cancellationToken)
    {
        var image = ImagePath(volumeId);
        var temp = image + ".tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                stream.SetLength(capacityBytes);
            }

            // -m 0: no blocks reserved for root, a pod's scratch space is all the pod's.
            // lazy init: a sparse image stays sparse and formatting takes well under a second.
            await Mounter.RunAsync("mkfs.ext4",
                ["-F", "-q", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", "-L", "csicache", temp],
                cancellationToken);
            File.Move(temp, image, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }

        var record = new VolumeRecord(volumeId, name, VolumeKind.Local, capacityBytes,
            new Dictionary<string, string> { [VolumeContextKeys.Kind] = "local" });
        AtomicFile.Write(RecordPath(volumeId), JsonSerializer.SerializeToUtf8Bytes(record, Json));
        return record;
    }

    public async Task DeleteAsync(string volumeId, CancellationToken cancellationToken)
    {
        if (_state.FindStaged(volumeId) is { } staged)
        {
            throw new CsiFaultException(StatusCode.FailedPrecondition,
                $"volume {volumeId} is still staged at {staged.StagingPath}; unstage it before deleting");
        }

        var image = ImagePath(volumeId);
        if (LoopDevices.FindByBackingFile(image) is { } device)
        {
            if (MountTable.Read().Any(m => m.Source == device))
            {
                throw new CsiFaultException(StatusCode.FailedPrecondition,
                    $"volume {volumeId} is still mounted through {device}; unmount it before deleting");
            }

            await LoopDevices.DetachAsync(device, cancellationToken);
        }

        // The record goes first: a crash between the two leaves an orphan image that List ignores,
        // never a record pointing at nothing.
        File.Delete(RecordPath(volumeId));
        File.Delete(image);
    }

    public long AvailableBytes()
    {
        var free = FileSystemUsage.Of(_directory).AvailableBytes;
        long promised = 0;
        foreach (var record in List())
        {
            var allocated = AllocatedBytes(ImagePath(record.VolumeId));
            promised += Math.Max(0, record.CapacityBytes - allocated);
        }

        return Math.Max(0, free - promised);
    }

    private static long AllocatedBytes(string path) => Native.AllocatedBytes(path);
}

/// <summary>Loop devices as the kernel lists them in /sys/block/loopN/loop/backing_file.</summary>
public static class LoopDevices
{
    public static string? FindByBackingFile(string path)
    {
        var full = Path.GetFullPath(path);
        if (!Directory.Exists("/sys/block"))
        {
            return null;
        }

        foreach (var dir in Directory.EnumerateDirectories("/sys/block", "loop*"))
        {
            if (ReadBackingFile(Path.Combine(dir, "loop", "backing_file")) == full)
            {
                return "/dev/" + Path.GetFileName(dir);
            }
        }

        return null;
    }

    /// <summary>
    /// A loop device's backing file, or null when it has none. A device being detached at this
    /// moment (by anyone on the node) loses its attribute between listing and reading: reading it
    /// then fails with ENODEV or ENOENT. That device is not the one we look for, so it is skipped,
    /// not an error (CI caught DeleteVolume failing on it while another volume was torn down).
    /// </summary>
    internal static string? ReadBackingFile(string attribute)
    {
        try
        {
            return File.ReadAllText(attribute).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static Task DetachAsync(string device, CancellationToken ct) => Mounter.RunAsync("losetup", ["-d", device], ct);
}
