using System.Globalization;
using System.Text;

namespace CsiCache.Bench;

internal static class Format
{
    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("0.##", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("0.#", CultureInfo.InvariantCulture) + " MiB",
        >= 1L << 10 => (bytes / 1024.0).ToString("0.#", CultureInfo.InvariantCulture) + " KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };

    public static string Number(double value) => value switch
    {
        >= 100 => value.ToString("N0", CultureInfo.InvariantCulture),
        >= 10 => value.ToString("0.0", CultureInfo.InvariantCulture),
        _ => value.ToString("0.00", CultureInfo.InvariantCulture),
    };

    public static string Ratio(double value) => value.ToString("0.00", CultureInfo.InvariantCulture) + "×";
}

/// <summary>How a row's figures relate to others: what its ratio column divides by.</summary>
internal enum RowKind
{
    /// <summary>Native, page cache warm: the physical limit; the reference of warm+page-cache rows.</summary>
    NativeWarm,

    /// <summary>Native after drop_caches: the disk; the reference of warm (our cache on disk) rows.</summary>
    NativeDisk,

    /// <summary>The origin spoken to directly; the reference of cold rows over that origin.</summary>
    OriginRaw,

    /// <summary>The origin with parallel ranged GETs (workload a only).</summary>
    OriginParallel,

    /// <summary>A fresh mount with an empty cache.</summary>
    Cold,

    /// <summary>Second pass: everything in the tool's cache, kernel page cache dropped.</summary>
    Warm,

    /// <summary>Third pass: the tool's cache and the kernel page cache both warm.</summary>
    WarmPageCache,
}

/// <summary>One row of the table: a tool (or native/origin) in one state.</summary>
internal sealed record Row(string Tool, OriginKind? Origin, RowKind Kind)
{
    public string Key => $"{Tool}|{Origin}|{Kind}";

    public string StateText => Kind switch
    {
        RowKind.NativeWarm => "page cache warm",
        RowKind.NativeDisk => "page cache dropped",
        RowKind.OriginRaw => "raw GET, 1 stream per reader",
        RowKind.OriginParallel => "raw GET, 8 ranged streams",
        RowKind.Cold => "cold",
        RowKind.Warm => "warm (page cache dropped)",
        _ => "warm + page cache",
    };
}

/// <summary>The figures of every pass, and the markdown they become.</summary>
internal sealed class Results(Dataset data, IReadOnlyList<WorkloadId> workloads)
{
    private readonly Dictionary<string, Dictionary<WorkloadId, List<PassResult>>> _passes = [];
    private readonly List<Row> _rows = [];
    private readonly Dictionary<string, long> _peakRss = [];
    private readonly List<string> _notes = [];

    public void Add(Row row, WorkloadId workload, PassResult result)
    {
        if (!_passes.TryGetValue(row.Key, out var byWorkload))
        {
            byWorkload = [];
            _passes[row.Key] = byWorkload;
            _rows.Add(row);
        }
        if (!byWorkload.TryGetValue(workload, out var list))
        {
            list = [];
            byWorkload[workload] = list;
        }
        list.Add(result);
        if (!result.Valid)
        {
            _notes.Add($"{row.Tool} {(row.Origin is { } o ? $"({o}) " : "")}{row.StateText}, workload {Workloads.Letter(workload)} ({workload}): " +
                (result.Error ?? $"{result.Mismatches} checksum mismatches"));
        }
    }

    private readonly Dictionary<string, Dictionary<WorkloadId, List<double>>> _cpu = [];

    /// <summary>Cores the daemon kept busy during one pass: its CPU seconds (user + system) ÷ the pass's seconds.</summary>
    public void AddCpu(Row row, WorkloadId workload, double seconds)
    {
        if (!_cpu.TryGetValue(row.Key, out var byWorkload))
        {
            byWorkload = [];
            _cpu[row.Key] = byWorkload;
        }
        if (!byWorkload.TryGetValue(workload, out var list))
        {
            list = [];
            byWorkload[workload] = list;
        }
        list.Add(seconds);
    }

    /// <summary>Daemon CPU (cores busy) per pass, median, for the rows of mounted tools: what each costs on a 2-core box.</summary>
    public string CpuMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append("| daemon CPU: cores busy during the pass (median) | state | ");
        sb.AppendJoin(" | ", workloads.Select(w => Workloads.Title(w, data)[..Workloads.Title(w, data).LastIndexOf(' ')]));
        sb.AppendLine(" |");
        sb.Append("| --- | --- |");
        foreach (WorkloadId _ in workloads)
        {
            sb.Append(" ---: |");
        }
        sb.AppendLine();
        foreach (Row row in _rows.Where(r => _cpu.ContainsKey(r.Key)))
        {
            string origin = row.Origin == OriginKind.S3 ? "s3" : "http";
            sb.Append(CultureInfo.InvariantCulture, $"| {row.Tool} ({origin}) | {row.StateText} | ");
            sb.AppendJoin(" | ", workloads.Select(w => _cpu[row.Key].TryGetValue(w, out var list) && list.Count > 0
                ? list.Order().ElementAt(list.Count / 2).ToString("0.00", CultureInfo.InvariantCulture) : "–"));
            sb.AppendLine(" |");
        }
        return sb.ToString();
    }

    public void AddPeakRss(string tool, long bytes)
    {
        _peakRss[tool] = Math.Max(bytes, _peakRss.GetValueOrDefault(tool));
    }

    public long PeakRss(string tool) => _peakRss.GetValueOrDefault(tool);

    public IReadOnlyList<string> Notes => _notes;

    /// <summary>Median of the valid passes; null when there are none or any pass failed (a wrong answer is not counted).</summary>
    public double? Median(Row row, WorkloadId workload)
    {
        if (!_passes.TryGetValue(row.Key, out var byWorkload) || !byWorkload.TryGetValue(workload, out var list) || list.Count == 0 || list.Any(r => !r.Valid))
        {
            return null;
        }
        double[] figures = [.. list.Select(r => Workloads.Figure(workload, r)).Order()];
        int n = figures.Length;
        return n % 2 == 1 ? figures[n / 2] : (figures[(n / 2) - 1] + figures[n / 2]) / 2;
    }

    public double? Median(string tool, OriginKind? origin, RowKind kind, WorkloadId workload) => Median(new Row(tool, origin, kind), workload);

    private string Cell(Row row, WorkloadId workload)
    {
        if (!_passes.TryGetValue(row.Key, out var byWorkload) || !byWorkload.TryGetValue(workload, out var list))
        {
            return "–";
        }
        int failed = list.Count(r => !r.Valid);
        if (failed > 0)
        {
            return list.Any(r => r.Error is not null) ? $"**error** ({failed}/{list.Count})" : $"**wrong bytes** ({failed}/{list.Count})";
        }
        double value = Median(row, workload)!.Value;
        double? reference = Reference(row, workload);
        return reference is double r && r > 0 ? $"{Format.Number(value)} ({Format.Ratio(value / r)})" : Format.Number(value);
    }

    /// <summary>Cold rows: the origin's raw rate for the same workload; warm rows: native in the same page-cache state.</summary>
    private double? Reference(Row row, WorkloadId workload) => row.Kind switch
    {
        RowKind.NativeDisk or RowKind.WarmPageCache => Median("native", null, RowKind.NativeWarm, workload),
        RowKind.Warm => Median("native", null, RowKind.NativeDisk, workload),
        RowKind.Cold or RowKind.OriginParallel => Median("origin", row.Origin, RowKind.OriginRaw, workload),
        _ => null,
    };

    public string Markdown(int runs)
    {
        var sb = new StringBuilder();
        sb.Append("| tool | origin | state | ");
        sb.AppendJoin(" | ", workloads.Select(w => Workloads.Title(w, data)));
        sb.AppendLine(" | peak RSS |");
        sb.Append("| --- | --- | --- |");
        foreach (WorkloadId _ in workloads)
        {
            sb.Append(" ---: |");
        }
        sb.AppendLine(" ---: |");
        foreach (Row row in _rows)
        {
            string origin = row.Origin switch { OriginKind.Http => "http (nginx)", OriginKind.S3 => "s3 (s3rver)", _ => "local disk" };
            sb.Append(CultureInfo.InvariantCulture, $"| {row.Tool} | {origin} | {row.StateText} | ");
            sb.AppendJoin(" | ", workloads.Select(w => Cell(row, w)));
            string rss = row.Kind is RowKind.Cold or RowKind.Warm or RowKind.WarmPageCache && _peakRss.TryGetValue(RssKey(row.Tool, row.Origin), out long b) ? Format.Bytes(b) : "";
            sb.AppendLine(CultureInfo.InvariantCulture, $" | {rss} |");
        }
        sb.AppendLine();
        sb.Append(CultureInfo.InvariantCulture, $"Each figure is the median of {runs} run(s). ");
        sb.AppendLine("Ratios: *cold* rows ÷ the origin's raw rate for the same workload (single stream per reader); " +
            "*warm (page cache dropped)* rows ÷ native with page cache dropped; *warm + page cache* rows ÷ native with page cache warm. " +
            "Peak RSS is the highest VmHWM of the daemon over all its mounts.");
        return sb.ToString();
    }

    public static string RssKey(string tool, OriginKind? origin) => $"{tool}|{origin}";
}
