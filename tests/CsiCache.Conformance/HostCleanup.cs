using System.Diagnostics;

namespace CsiCache.Conformance;

/// <summary>Undoes mounts and loop devices a test (or a crashed driver) left under a directory.</summary>
public static class HostCleanup
{
    public static IReadOnlyList<string> MountsUnder(string root)
    {
        var prefix = root.TrimEnd('/') + "/";
        return [.. File.ReadLines("/proc/self/mountinfo")
            .Select(l => Unescape(l.Split(' ')[4]))
            .Where(m => m.StartsWith(prefix, StringComparison.Ordinal) || m == root.TrimEnd('/'))];
    }

    public static void UnmountAllUnder(string root)
    {
        for (var round = 0; round < 8; round++)
        {
            var mounts = MountsUnder(root);
            if (mounts.Count == 0)
            {
                return;
            }

            // Deepest first, so nested mounts come off before their parents.
            foreach (var mount in mounts.OrderByDescending(m => m.Length))
            {
                _ = umount2(mount, 2 /* MNT_DETACH */);
            }
        }
    }

    public static IReadOnlyList<string> LoopsBackedUnder(string root)
    {
        var prefix = root.TrimEnd('/') + "/";
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/sys/block", "loop*"))
        {
            var backing = Path.Combine(dir, "loop", "backing_file");
            if (File.Exists(backing) && File.ReadAllText(backing).Trim().StartsWith(prefix, StringComparison.Ordinal))
            {
                found.Add("/dev/" + Path.GetFileName(dir));
            }
        }

        return found;
    }

    public static void DetachLoopsUnder(string root)
    {
        foreach (var device in LoopsBackedUnder(root))
        {
            using var p = Process.Start("losetup", ["-d", device]);
            p.WaitForExit();
        }
    }

    private static string Unescape(string s) =>
        s.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
         .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int umount2(string target, int flags);
}
