using System.Globalization;
using System.Text;

namespace CsiCache.Bench;

/// <summary>
/// Sets the figures beside the issue's targets. It reports "met" or "missed"; it asserts nothing
/// and the exit code never depends on it.
/// </summary>
internal static class Targets
{
    public static string Assess(Results results, BenchOptions options, IReadOnlyList<MountTool> tools)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| target (csicache; vs native: over http/nginx) | measured | verdict |");
        sb.AppendLine("| --- | --- | --- |");
        const string me = "csicache";
        OriginKind http = OriginKind.Http;

        void Line(string target, double? value, double bar, string how)
        {
            string measured = value is double v ? $"{Format.Ratio(v)} ({how})" : $"n/a ({how})";
            string verdict = value is double x ? (x >= bar ? "met" : "**missed**") : "not measured";
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {target} | {measured} | {verdict} |");
        }

        double? Ratio(double? a, double? b) => a is double x && b is double y && y > 0 ? x / y : null;
        double? Get(string tool, OriginKind? origin, RowKind kind, WorkloadId w) => results.Median(tool, origin, kind, w);

        foreach ((WorkloadId w, double bar, string name) in new[]
        {
            (WorkloadId.Sequential, 0.95, "warm (a) ≥ 0.95× native"),
            (WorkloadId.SmallFiles1, 0.8, "warm (b) ×1 ≥ 0.8× native files/s"),
            (WorkloadId.SmallFiles4, 0.8, "warm (b) ×4 ≥ 0.8× native files/s"),
            (WorkloadId.Listing, 0.8, "warm (d) ≥ 0.8× native"),
        })
        {
            if (!options.Workloads.Contains(w)) continue;
            Line(name + " — our cache on disk", Ratio(Get(me, http, RowKind.Warm, w), Get("native", null, RowKind.NativeDisk, w)), bar, "page cache dropped, vs native page cache dropped");
            Line(name + " — with page cache", Ratio(Get(me, http, RowKind.WarmPageCache, w), Get("native", null, RowKind.NativeWarm, w)), bar, "vs native page cache warm");
        }
        if (options.Workloads.Contains(WorkloadId.Sequential))
        {
            Line("cold (a) ≥ 0.9× origin single stream", Ratio(Get(me, http, RowKind.Cold, WorkloadId.Sequential), Get("origin", http, RowKind.OriginRaw, WorkloadId.Sequential)), 0.9, "vs raw GET of nginx");
        }

        // Peers: the better of rclone and s3fs over the same origin as csicache, so that a cold
        // figure compares tools, not nginx with s3rver. Warm figures hardly depend on the origin.
        foreach (OriginKind origin in new[] { OriginKind.Http, OriginKind.S3 })
        {
            if (!tools.Any(t => t.Name == me && t.Origin == origin))
            {
                continue;
            }
            var peers = tools.Where(t => t.Name is "rclone" or "s3fs" && t.Origin == origin).ToList();
            if (peers.Count == 0)
            {
                continue;
            }
            foreach (WorkloadId w in options.Workloads)
            {
                foreach (RowKind kind in new[] { RowKind.Cold, RowKind.Warm, RowKind.WarmPageCache })
                {
                    double? best = null;
                    string? bestName = null;
                    foreach (MountTool p in peers)
                    {
                        if (Get(p.Name, p.Origin, kind, w) is double v && (best is null || v > best))
                        {
                            best = v;
                            bestName = p.Label;
                        }
                    }
                    double bar = kind == RowKind.Cold && w is WorkloadId.SmallFiles1 or WorkloadId.SmallFiles4 or WorkloadId.RandomShards ? 2.0 : 1.5;
                    string state = kind switch { RowKind.Cold => "cold", RowKind.Warm => "warm", _ => "warm + page cache" };
                    Line($"{state} ({Workloads.Letter(w)}) {w}, {(origin == OriginKind.Http ? "http" : "s3")}: ≥ {bar.ToString("0.0", CultureInfo.InvariantCulture)}× best peer",
                        Ratio(Get(me, origin, kind, w), best), bar, bestName is null ? "no peer figure" : "vs " + bestName);
                }
            }
        }

        if (tools.FirstOrDefault(t => t.Name == me) is CsiCacheTool cs)
        {
            long rss = results.PeakRss(Results.RssKey(me, http));
            long limit = ParseSize(cs.MemoryLimit);
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| csicache peak RSS under its memory limit ({cs.MemoryLimit}) | {Format.Bytes(rss)} | {(rss == 0 ? "not measured" : rss <= limit ? "met" : "**missed**")} |");
            int errors = results.Notes.Count(n => n.StartsWith(me, StringComparison.Ordinal));
            sb.AppendLine(CultureInfo.InvariantCulture, $"| csicache: no read error, no wrong byte | {errors} failed pass(es) | {(errors == 0 ? "met" : "**missed**")} |");
        }
        return sb.ToString();
    }

    private static long ParseSize(string text)
    {
        string t = text.Trim();
        (string number, long scale) = t switch
        {
            _ when t.EndsWith("Gi", StringComparison.Ordinal) => (t[..^2], 1L << 30),
            _ when t.EndsWith("Mi", StringComparison.Ordinal) => (t[..^2], 1L << 20),
            _ when t.EndsWith("Ki", StringComparison.Ordinal) => (t[..^2], 1L << 10),
            _ => (t, 1L),
        };
        return long.TryParse(number, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) ? n * scale : long.MaxValue;
    }
}
