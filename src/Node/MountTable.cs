using System.Text;

namespace CsiCache.Node;

/// <summary>One line of /proc/self/mountinfo, the fields we use.</summary>
public sealed record MountEntry(string MountPoint, string Root, string FileSystemType, string Source, string Options);

/// <summary>
/// The kernel's view of what is mounted, read from /proc/self/mountinfo every time (it is
/// the only truth after a crash or a restart; our state file only says what we meant to do).
/// </summary>
public static class MountTable
{
    public static IReadOnlyList<MountEntry> Read(string path = "/proc/self/mountinfo")
    {
        var entries = new List<MountEntry>();
        foreach (var line in File.ReadLines(path))
        {
            // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (fields.Length < 10 || dash < 6 || dash + 2 >= fields.Length)
            {
                continue;
            }

            entries.Add(new MountEntry(
                Unescape(fields[4]), Unescape(fields[3]), fields[dash + 1], Unescape(fields[dash + 2]), fields[5]));
        }

        return entries;
    }

    /// <summary>True when something is mounted exactly at <paramref name="path"/>.</summary>
    public static bool IsMountPoint(string path) => Find(path) is not null;

    /// <summary>The topmost mount at <paramref name="path"/>, if any.</summary>
    public static MountEntry? Find(string path)
    {
        var full = Normalise(path);
        MountEntry? found = null;
        foreach (var entry in Read())
        {
            if (entry.MountPoint == full)
            {
                found = entry;
            }
        }

        return found;
    }

    public static string Normalise(string path)
    {
        var full = Path.GetFullPath(path);
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }

    /// <summary>mountinfo writes space, tab, newline and backslash as octal escapes (\040 …).</summary>
    public static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var bytes = new List<byte>(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && IsOctal(field, i + 1))
            {
                bytes.Add((byte)(((field[i + 1] - '0') << 6) | ((field[i + 2] - '0') << 3) | (field[i + 3] - '0')));
                i += 3;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(field[i].ToString()));
            }
        }

        return Encoding.UTF8.GetString([.. bytes]);
    }

    private static bool IsOctal(string s, int at) =>
        at + 2 < s.Length && s[at] is >= '0' and <= '7' && s[at + 1] is >= '0' and <= '7' && s[at + 2] is >= '0' and <= '7';
}
