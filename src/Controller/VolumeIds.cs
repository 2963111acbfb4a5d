using System.Security.Cryptography;
using System.Text;

namespace CsiCache.Controller;

/// <summary>The two kinds of volume we hand out.</summary>
public enum VolumeKind
{
    /// <summary>A loop-mounted ext4 image on the node's local disk.</summary>
    Local,

    /// <summary>A read-only FUSE view of a remote dataset through the node cache.</summary>
    Dataset,
}

/// <summary>
/// Volume ids are derived from the CreateVolume name, so a retried CreateVolume (the CO
/// retries until it sees an answer) lands on the same volume without any lookup table. The kind
/// is part of the id, so every later call knows what it is dealing with from the id alone.
/// Ids carry no part of the source, parameters or secrets.
/// </summary>
public static class VolumeIds
{
    private const string LocalPrefix = "local-";
    private const string DatasetPrefix = "dataset-";

    public static string For(VolumeKind kind, string name)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(name));
        var hex = Convert.ToHexStringLower(hash.AsSpan(0, 16));
        return (kind == VolumeKind.Local ? LocalPrefix : DatasetPrefix) + hex;
    }

    /// <summary>Recognises our ids; anything else is a volume we never created.</summary>
    public static bool TryParse(string volumeId, out VolumeKind kind)
    {
        if (IsWellFormed(volumeId, LocalPrefix))
        {
            kind = VolumeKind.Local;
            return true;
        }

        if (IsWellFormed(volumeId, DatasetPrefix))
        {
            kind = VolumeKind.Dataset;
            return true;
        }

        kind = default;
        return false;
    }

    private static bool IsWellFormed(string id, string prefix)
    {
        if (!id.StartsWith(prefix, StringComparison.Ordinal) || id.Length != prefix.Length + 32)
        {
            return false;
        }

        foreach (var c in id.AsSpan(prefix.Length))
        {
            if (!char.IsAsciiHexDigitLower(c))
            {
                return false;
            }
        }

        return true;
    }
}
