namespace CsiCache.Bench;

/// <summary>The command line, checked.</summary>
internal sealed record BenchOptions(
    DatasetShape Shape,
    int Runs,
    IReadOnlyList<WorkloadId> Workloads,
    IReadOnlySet<string> Tools,
    string WorkDirectory,
    string? CsiCacheBinary,
    string MemoryLimit,
    TimeSpan PassTimeout,
    string? OutputFile)
{
    public static readonly string[] KnownTools = ["native", "origin", "csicache", "rclone", "s3fs", "csicache-s3", "rclone-s3", "csicache-pt"];

    public static IReadOnlySet<string> ParseList(string text)
    {
        var set = new HashSet<string>(text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), StringComparer.Ordinal);
        foreach (string tool in set)
        {
            if (!KnownTools.Contains(tool))
            {
                throw new ArgumentException($"--tools: unknown '{tool}' (known: {string.Join(", ", KnownTools)})");
            }
        }
        return set;
    }

    public static IReadOnlyList<WorkloadId> ParseWorkloads(string text)
    {
        var list = new List<WorkloadId>();
        // (d) first in each session order is irrelevant (each workload gets fresh mounts), but the
        // table reads in the issue's order.
        foreach (string w in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            switch (w)
            {
                case "a": list.Add(WorkloadId.Sequential); break;
                case "b": list.Add(WorkloadId.SmallFiles1); list.Add(WorkloadId.SmallFiles4); break;
                case "c": list.Add(WorkloadId.RandomShards); break;
                case "d": list.Add(WorkloadId.Listing); break;
                default: throw new ArgumentException($"--workloads: unknown '{w}' (a, b, c, d)");
            }
        }
        return [.. list.Distinct()];
    }
}
