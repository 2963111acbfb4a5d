using System.Security.Cryptography;
using System.Text;
using CsiCache.Datasets;

namespace CsiCache.Node.Staging;

/// <summary>
/// One FUSE session serving one dataset on this node, mounted at a private directory and
/// bind-mounted at the staging path of every volume that stages the same dataset.
/// </summary>
internal sealed class DatasetSession(string key, string directory, DatasetMount mount)
{
    public string Key { get; } = key;

    /// <summary>Where the session itself is mounted (under the stager's session root).</summary>
    public string Directory { get; } = directory;

    public DatasetMount Mount { get; } = mount;

    /// <summary>
    /// Volume id → its staging path (a bind mount of <see cref="Directory"/>). Changed only under the
    /// session key's lock; concurrent so a stage of another dataset may read it without that lock.
    /// </summary>
    public System.Collections.Concurrent.ConcurrentDictionary<string, string> Volumes { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Which volumes may share a session: the same source, the same dataset parameters and the
    /// same secrets. Different credentials never share (one volume must not read with another's
    /// rights). Keyed with a per-process random salt, so the directory name says nothing about
    /// the secrets even to someone who guesses them; sessions never outlive the process anyway.
    /// </summary>
    public static string KeyOf(string source, IReadOnlyDictionary<string, string> parameters,
        IReadOnlyDictionary<string, string> secrets, byte[] salt)
    {
        var text = new StringBuilder();
        text.Append(source).Append('\n');
        foreach (var (k, v) in parameters.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            text.Append(k).Append('=').Append(v).Append('\n');
        }

        text.Append("--secrets--\n");
        foreach (var (k, v) in secrets.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            text.Append(k).Append('=').Append(v).Append('\n');
        }

        var mac = HMACSHA256.HashData(salt, Encoding.UTF8.GetBytes(text.ToString()));
        return Convert.ToHexStringLower(mac.AsSpan(0, 12));
    }
}
