using System.Diagnostics;
using System.Globalization;

namespace CsiCache.TestKit;

/// <summary>What a directory tree really occupies on disk, as <c>du</c> measures it (the cache's object files are sparse: their length overstates it).</summary>
public static class DiskUsage
{
    /// <summary>Bytes allocated to the files under <paramref name="root"/>: <c>du -s -B1</c>; holes do not count.</summary>
    public static long AllocatedBytes(string root)
    {
        var start = new ProcessStartInfo("du", ["-s", "-B1", root]) { RedirectStandardOutput = true };
        using Process du = Process.Start(start) ?? throw new InvalidOperationException("du did not start");
        string output = du.StandardOutput.ReadToEnd();
        du.WaitForExit();
        if (du.ExitCode != 0)
        {
            throw new InvalidOperationException($"du -s -B1 {root} exited with {du.ExitCode}");
        }
        return long.Parse(output.AsSpan(0, output.IndexOf('\t', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
    }
}
