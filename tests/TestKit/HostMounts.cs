using System.Globalization;
using System.Runtime.InteropServices;

namespace CsiCache.TestKit;

/// <summary>One line of /proc/self/mountinfo: where, what type, and the device (for fusectl).</summary>
public sealed record HostMount(string MountPoint, string FileSystemType, uint DeviceMinor)
{
    public bool IsFuse => FileSystemType == "fuse" || FileSystemType.StartsWith("fuse.", StringComparison.Ordinal);
}

/// <summary>The kernel's mount table, read by the tests themselves (not through the code under test).</summary>
public static class HostMounts
{
    public static IReadOnlyList<HostMount> All()
    {
        var result = new List<HostMount>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            var minor = uint.Parse(fields[2].Split(':')[1], CultureInfo.InvariantCulture);
            result.Add(new HostMount(Unescape(fields[4]), fields[dash + 1], minor));
        }

        return result;
    }

    public static IReadOnlyList<HostMount> Under(string root)
    {
        var prefix = root.TrimEnd('/') + "/";
        return [.. All().Where(m => m.MountPoint.StartsWith(prefix, StringComparison.Ordinal) || m.MountPoint == root.TrimEnd('/'))];
    }

    /// <summary>Just the mount points under <paramref name="root"/>.</summary>
    public static IReadOnlyList<string> MountPointsUnder(string root) => [.. Under(root).Select(m => m.MountPoint)];

    public static HostMount? At(string path) => All().LastOrDefault(m => m.MountPoint == Path.GetFullPath(path).TrimEnd('/'));

    public static void UnmountAllUnder(string root)
    {
        for (var round = 0; round < 8; round++)
        {
            var mounts = Under(root);
            if (mounts.Count == 0)
            {
                return;
            }

            foreach (var mount in mounts.Select(m => m.MountPoint).Distinct().OrderByDescending(m => m.Length))
            {
                _ = umount2(mount, 2 /* MNT_DETACH */);
            }
        }
    }

    /// <summary>Loop devices whose backing file lies under <paramref name="root"/> (/sys/block/loopN/loop/backing_file).</summary>
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
            using var losetup = System.Diagnostics.Process.Start("losetup", ["-d", device]);
            losetup.WaitForExit();
        }
    }

    /// <summary>
    /// Kills a FUSE connection from the outside, as the kernel does when its server dies, through
    /// fusectl (/sys/fs/fuse/connections/DEV/abort), mounting fusectl if the machine has not.
    /// </summary>
    public static void AbortFuseConnection(string mountPoint)
    {
        var mount = At(mountPoint) ?? throw new InvalidOperationException($"nothing mounted at {mountPoint}");
        if (!mount.IsFuse)
        {
            throw new InvalidOperationException($"{mountPoint} is {mount.FileSystemType}, not FUSE");
        }

        const string connections = "/sys/fs/fuse/connections";
        if (!Directory.Exists(Path.Combine(connections, mount.DeviceMinor.ToString(CultureInfo.InvariantCulture))))
        {
            if (mount2("fusectl", connections, "fusectl", 0, null) != 0)
            {
                throw new InvalidOperationException($"cannot mount fusectl at {connections}: errno {Marshal.GetLastPInvokeError()}");
            }
        }

        File.WriteAllText(Path.Combine(connections, mount.DeviceMinor.ToString(CultureInfo.InvariantCulture), "abort"), "1");
    }

    private static string Unescape(string s) =>
        s.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
         .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);

    [DllImport("libc", SetLastError = true)]
    private static extern int umount2(string target, int flags);

    [DllImport("libc", EntryPoint = "mount", SetLastError = true)]
    private static extern int mount2(string source, string target, string type, ulong flags, string? data);
}
