using System.Globalization;
using System.Text;

namespace CsiCache.Fuse;

/// <summary>One line of /proc/self/mountinfo, the fields we use.</summary>
public sealed record MountInfoEntry(string MountPoint, string FileSystemType, string Source, uint DeviceMajor, uint DeviceMinor)
{
    public bool IsFuse => FileSystemType == "fuse" || FileSystemType.StartsWith("fuse.", StringComparison.Ordinal) || FileSystemType == "fuseblk";
}

/// <summary>Reads /proc/self/mountinfo (proc(5)): the kernel's own view, unlike /etc/mtab.</summary>
public static class MountInfo
{
    public static IReadOnlyList<MountInfoEntry> Read(string path = "/proc/self/mountinfo")
    {
        var entries = new List<MountInfoEntry>();
        foreach (string line in File.ReadLines(path))
        {
            if (TryParse(line, out MountInfoEntry? entry))
            {
                entries.Add(entry);
            }
        }
        return entries;
    }

    /// <summary>The topmost mount at <paramref name="mountPoint"/> (later lines stack on earlier ones), or null.</summary>
    public static MountInfoEntry? Find(string mountPoint, string path = "/proc/self/mountinfo")
    {
        string wanted = Normalize(mountPoint);
        MountInfoEntry? found = null;
        foreach (MountInfoEntry entry in Read(path))
        {
            if (entry.MountPoint == wanted)
            {
                found = entry;
            }
        }
        return found;
    }

    internal static string Normalize(string path)
    {
        string full = Path.GetFullPath(path);
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }

    /// <summary>Parses "id parent major:minor root mountpoint options [optional…] - fstype source superoptions".</summary>
    internal static bool TryParse(string line, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out MountInfoEntry? entry)
    {
        entry = null;
        string[] fields = line.Split(' ');
        int separator = Array.IndexOf(fields, "-");
        if (fields.Length < 7 || separator < 6 || separator + 2 >= fields.Length)
        {
            return false;
        }
        string[] device = fields[2].Split(':');
        if (device.Length != 2 ||
            !uint.TryParse(device[0], NumberStyles.None, CultureInfo.InvariantCulture, out uint major) ||
            !uint.TryParse(device[1], NumberStyles.None, CultureInfo.InvariantCulture, out uint minor))
        {
            return false;
        }
        entry = new MountInfoEntry(Unescape(fields[4]), fields[separator + 1], Unescape(fields[separator + 2]), major, minor);
        return true;
    }

    /// <summary>The kernel writes space, tab, newline and backslash as \ooo octal escapes.</summary>
    internal static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }
        var bytes = new List<byte>(field.Length);
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' &&
                IsOctal(field, i + 1) && IsOctal(field, i + 2) && IsOctal(field, i + 3))
            {
                bytes.Add((byte)(((field[i + 1] - '0') << 6) | ((field[i + 2] - '0') << 3) | (field[i + 3] - '0')));
                i += 3;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(field[i].ToString()));
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private static bool IsOctal(string s, int index) => index < s.Length && s[index] >= '0' && s[index] <= '7';
}
