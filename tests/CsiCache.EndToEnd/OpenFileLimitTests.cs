using CsiCache.Cli.Hosting;

namespace CsiCache.EndToEnd;

/// <summary>The fd limit csicache raises at start (its cache keeps an fd per idle cached object).</summary>
public sealed class OpenFileLimitTests
{
    [Fact]
    public void Raise_NeverLowersTheLimit_AndReportsTheOneInForce()
    {
        (ulong softBefore, ulong hardBefore) = ReadLimits();

        ulong reported = OpenFileLimit.Raise();

        (ulong softAfter, ulong hardAfter) = ReadLimits();
        Assert.Equal(softAfter, reported);
        Assert.True(softAfter >= softBefore, $"soft limit lowered: {softBefore} -> {softAfter}");
        Assert.True(hardAfter >= hardBefore, $"hard limit lowered: {hardBefore} -> {hardAfter}");
        // Any process may raise its soft limit to its hard limit.
        Assert.True(softAfter >= Math.Min(hardBefore, 1UL << 20), $"soft limit {softAfter} below the old hard limit {hardBefore}");
        if (HasCapSysResource())
        {
            // With CAP_SYS_RESOURCE the hard limit goes up too, to the kernel's fs.nr_open.
            // (Not every root has it: this machine's sandbox drops it, so only the soft limit moves.)
            ulong nrOpen = ulong.Parse(File.ReadAllText("/proc/sys/fs/nr_open").Trim(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(softAfter >= Math.Min(nrOpen, 1UL << 20), $"root: soft limit {softAfter}, fs.nr_open {nrOpen}");
        }
    }

    private static bool HasCapSysResource()
    {
        string effective = File.ReadLines("/proc/self/status").Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal))["CapEff:".Length..].Trim();
        return (ulong.Parse(effective, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) & (1UL << 24)) != 0;
    }

    private static (ulong Soft, ulong Hard) ReadLimits()
    {
        const string Name = "Max open files";
        string line = File.ReadLines("/proc/self/limits").Single(l => l.StartsWith(Name, StringComparison.Ordinal));
        string[] parts = line[Name.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (Parse(parts[0]), Parse(parts[1]));

        static ulong Parse(string value) => value == "unlimited" ? ulong.MaxValue : ulong.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
    }
}
