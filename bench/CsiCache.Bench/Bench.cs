using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace CsiCache.Bench;

/// <summary>
/// One benchmark run: native passes, the origins' raw rates, then each tool's mounts, each
/// workload on a fresh mount with an empty cache (cold), then again after drop_caches (warm: the
/// tool's own cache), then once more (warm + page cache).
/// </summary>
internal sealed class Bench(BenchOptions options, TextWriter log)
{
    private static readonly string[] Subtrees = ["seq", "imagenet", "imagenet", "shards", "imagenet"];

    private readonly string _work = options.WorkDirectory;
    private Dataset _data = null!;
    private Results _results = null!;
    private string? _s3Store;

    public int Run(CancellationToken ct)
    {
        Directory.CreateDirectory(_work);
        string repo = FindRepositoryRoot();
        string header = MachineHeader(repo);
        log.WriteLine(header);

        string mounts = Path.Join(_work, "mnt");
        if (Directory.Exists(mounts))
        {
            foreach (string stale in Directory.GetDirectories(mounts))
            {
                MountSession.Unmount(stale); // left by a run that was SIGKILLed
            }
        }

        _data = Dataset.Prepare(options.Shape, _work, log);
        log.WriteLine("data set: computing expected checksums from the local files ...");
        _data.ComputeExpected();
        for (int run = 0; run < options.Runs; run++)
        {
            _data.ExpectedRangesCached(run, _data.RandomReadPlan(run));
        }
        _results = new Results(_data, options.Workloads);

        var tools = new List<MountTool>();
        string? binary = null;
        if (options.Tools.Contains("csicache") || options.Tools.Contains("csicache-s3") || options.Tools.Contains("csicache-pt"))
        {
            binary = options.CsiCacheBinary ?? Path.Join(repo, "src", "Cli", "bin", "Release", "net10.0", "csicache");
            if (!File.Exists(binary))
            {
                throw new InvalidOperationException($"csicache binary not found at {binary}: build it with `dotnet build -c Release src/Cli` (bench/run.sh does), or pass --csicache");
            }
        }
        string cacheSize = Math.Max(2, (long)Math.Ceiling(options.Shape.TotalBytes * 1.5 / (1L << 30))) + "Gi";
        if (options.Tools.Contains("csicache")) tools.Add(new CsiCacheTool(OriginKind.Http, binary!, cacheSize, options.MemoryLimit));
        if (options.Tools.Contains("csicache-pt")) tools.Add(new CsiCacheTool(OriginKind.Http, binary!, cacheSize, options.MemoryLimit, passthrough: true));
        if (options.Tools.Contains("rclone")) tools.Add(new RcloneTool(OriginKind.Http));
        if (options.Tools.Contains("s3fs")) tools.Add(new S3fsTool());
        if (options.Tools.Contains("csicache-s3")) tools.Add(new CsiCacheTool(OriginKind.S3, binary!, cacheSize, options.MemoryLimit));
        if (options.Tools.Contains("rclone-s3")) tools.Add(new RcloneTool(OriginKind.S3));

        bool needHttp = tools.Any(t => t.Origin == OriginKind.Http) || (options.Tools.Contains("origin") && !tools.Any(t => t.Origin == OriginKind.S3));
        bool needS3 = tools.Any(t => t.Origin == OriginKind.S3);
        string scratch = Path.Join(_work, "scratch");
        Directory.CreateDirectory(scratch);

        if (options.Tools.Contains("native"))
        {
            RunNative(ct);
        }

        using NginxServer? nginx = needHttp ? NginxServer.Start(_data.Root, Path.Join(scratch, "nginx")) : null;
        S3rverServer? s3 = null;
        try
        {
            if (needS3)
            {
                _s3Store = Path.Join(_work, "s3rver-" + options.Shape.Name);
                s3 = S3rverServer.Start(repo, _s3Store, Path.Join(scratch, "s3rver.log"));
                s3.Seed(_data, _s3Store, log);
            }
            var origins = new Origins(nginx?.Url, s3?.Endpoint);
            log.WriteLine($"origins: {(nginx is null ? "" : "nginx " + nginx.Url)} {(s3 is null ? "" : "s3rver " + s3.Endpoint)}");

            if (options.Tools.Contains("origin"))
            {
                if (nginx is not null)
                {
                    RunOrigin(OriginKind.Http, () => new HttpTarget(nginx.Url), ct);
                }
                if (s3 is not null)
                {
                    RunOrigin(OriginKind.S3, () => new S3Target(s3.Endpoint, S3rverServer.Bucket, S3rverServer.AccessKey, S3rverServer.SecretKey), ct);
                }
            }

            foreach (MountTool tool in tools)
            {
                RunTool(tool, origins, scratch, ct);
            }
        }
        finally
        {
            s3?.Dispose();
        }

        string report = Report(header, tools);
        log.WriteLine();
        log.WriteLine(report);
        if (options.OutputFile is { } file)
        {
            File.WriteAllText(file, report);
            log.WriteLine($"report written to {file}");
        }
        return 0;
    }

    private void RunNative(CancellationToken ct)
    {
        var target = new FileTarget(_data.Root);
        var warm = new Row("native", null, RowKind.NativeWarm);
        var disk = new Row("native", null, RowKind.NativeDisk);
        foreach (WorkloadId w in options.Workloads)
        {
            PrimeOrigin(OriginKind.Http, w); // the local files are the HTTP origin's: this fills the page cache
            for (int run = 0; run < options.Runs; run++)
            {
                // Page-cache passes of the quick shape last milliseconds: repeat them to at least
                // MinimumNativeSeconds so a scheduler hiccup on this shared machine is not the figure.
                Record(warm, w, Timed(() => Repeat(() => Workloads.Run(w, target, _data, run, ct)), null));
            }
            for (int run = 0; run < options.Runs; run++)
            {
                DropCaches();
                Record(disk, w, Timed(() => Workloads.Run(w, target, _data, run, ct), null));
            }
        }
    }

    private void RunOrigin(OriginKind origin, Func<ReadTarget> create, CancellationToken ct)
    {
        var raw = new Row("origin", origin, RowKind.OriginRaw);
        var parallel = new Row("origin", origin, RowKind.OriginParallel);
        using ReadTarget target = create();
        foreach (WorkloadId w in options.Workloads)
        {
            for (int run = 0; run < options.Runs; run++)
            {
                PrimeOrigin(origin, w);
                Record(raw, w, Timed(() => Workloads.Run(w, target, _data, run, ct), null));
                if (w == WorkloadId.Sequential && target is HttpTarget http)
                {
                    Record(parallel, w, Timed(() => Workloads.SequentialParallel(http, _data, 8), null));
                }
            }
        }
    }

    private void RunTool(MountTool tool, Origins origins, string scratch, CancellationToken ct)
    {
        string slug = tool.Name + "-" + tool.Origin.ToString().ToLowerInvariant();
        string mountPoint = Path.Join(_work, "mnt", slug);
        string cache = Path.Join(_work, "cache", slug);
        string logPath = Path.Join(scratch, slug + ".log");
        File.Delete(logPath);
        var cold = new Row(tool.Name, tool.Origin, RowKind.Cold);
        var warm = new Row(tool.Name, tool.Origin, RowKind.Warm);
        var warmPc = new Row(tool.Name, tool.Origin, RowKind.WarmPageCache);
        log.WriteLine($"{tool.Label}: log in {logPath}");
        for (int run = 0; run < options.Runs; run++)
        {
            foreach (WorkloadId w in options.Workloads)
            {
                ct.ThrowIfCancellationRequested();
                DeleteDirectory(cache);
                PrimeOrigin(tool.Origin, w);
                MountSession session;
                try
                {
                    session = MountSession.Start(tool, origins, mountPoint, cache, scratch, logPath);
                }
                catch (InvalidOperationException e)
                {
                    foreach (Row row in new[] { cold, warm, warmPc })
                    {
                        Record(row, w, PassResult.Failed(e.Message));
                    }
                    continue;
                }
                try
                {
                    var target = new FileTarget(mountPoint);
                    int r = run;
                    // Cold: a fresh mount (new inodes, so no page cache) over an empty cache directory;
                    // the origin's files are in its page cache, as they were for the raw rows.
                    Record(cold, w, TimedWithCpu(() => Workloads.Run(w, target, _data, r, ct), session, cold, w), session);
                    DropCaches();
                    Record(warm, w, TimedWithCpu(() => Workloads.Run(w, target, _data, r, ct), session, warm, w), session);
                    Record(warmPc, w, TimedWithCpu(() => Repeat(() => Workloads.Run(w, target, _data, r, ct)), session, warmPc, w), session);
                }
                finally
                {
                    session.Dispose();
                    _results.AddPeakRss(Results.RssKey(tool.Name, tool.Origin), session.PeakRssBytes);
                    if (session.Process.Tail.Split('\n').LastOrDefault(l => l.StartsWith("unmounted", StringComparison.Ordinal)) is { } summary)
                    {
                        log.WriteLine($"    {summary}");
                    }
                }
            }
        }
        DeleteDirectory(cache);
    }

    /// <summary>A timed pass over a mount, noting how many cores its daemon kept busy during it (CPU seconds ÷ pass seconds).</summary>
    private PassResult TimedWithCpu(Func<PassResult> body, MountSession session, Row row, WorkloadId w)
    {
        double before = session.Process.CpuSeconds();
        PassResult result = Timed(body, session);
        if (!session.Process.HasExited && result.Valid)
        {
            _results.AddCpu(row, w, (session.Process.CpuSeconds() - before) / result.Seconds);
        }
        return result;
    }

    private void Record(Row row, WorkloadId w, PassResult result, MountSession? session = null)
    {
        _results.Add(row, w, result);
        string figure = result.Valid ? $"{Format.Number(Workloads.Figure(w, result))} {(w is WorkloadId.Sequential or WorkloadId.RandomShards ? "MB/s" : w == WorkloadId.Listing ? "entries/s" : "files/s")}" : "FAILED: " + (result.Error ?? $"{result.Mismatches} checksum mismatches");
        string rss = session is not null && !session.Process.HasExited
            ? $", daemon CPU {session.Process.CpuSeconds():0.00}s so far, RSS peak {Format.Bytes(session.Process.PeakRssBytes())}" : "";
        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {row.Tool,-9} {(row.Origin?.ToString() ?? ""),-5} {row.StateText,-28} ({Workloads.Letter(w)}) {w,-13} {result.Seconds,8:0.000}s  {figure}{rss}"));
    }

    private const double MinimumNativeSeconds = 0.5;

    /// <summary>
    /// Repeats a page-cache-warm pass (at most 100 times) until MinimumNativeSeconds have passed; one
    /// result for them all. Only for states a repeat does not change (native warm, warm + page cache).
    /// </summary>
    private static PassResult Repeat(Func<PassResult> pass)
    {
        PassResult total = pass();
        for (int i = 1; i < 100 && total.Valid && total.Seconds < MinimumNativeSeconds; i++)
        {
            PassResult next = pass();
            total = new PassResult(total.Seconds + next.Seconds, total.Bytes + next.Bytes, total.Items + next.Items, total.Mismatches + next.Mismatches, next.Error);
        }
        return total;
    }

    /// <summary>Runs a pass under the pass timeout; a pass that hangs is abandoned and its mount killed.</summary>
    private PassResult Timed(Func<PassResult> body, MountSession? session)
    {
        var task = Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            if (!task.Wait(options.PassTimeout))
            {
                session?.Dispose(); // readers blocked in the mount get ENOTCONN once it is gone
                task.Wait(TimeSpan.FromSeconds(30));
                return PassResult.Failed($"timed out after {options.PassTimeout.TotalSeconds:0}s");
            }
            return task.Result;
        }
        catch (AggregateException e) when (e.InnerException is not OperationCanceledException)
        {
            Exception inner = e.InnerException ?? e;
            return PassResult.Failed($"{inner.GetType().Name}: {inner.Message}");
        }
    }

    /// <summary>Reads a workload's files at the origin once, so the origin serves from its page cache in every run.</summary>
    private void PrimeOrigin(OriginKind origin, WorkloadId w)
    {
        string sub = Subtrees[(int)w];
        string dir = origin == OriginKind.Http || _s3Store is null ? Path.Join(_data.Root, sub) : Path.Join(_s3Store, S3rverServer.Bucket, sub);
        if (!Directory.Exists(dir))
        {
            dir = origin == OriginKind.Http || _s3Store is null ? _data.Root : _s3Store;
        }
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            foreach (string file in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
            {
                using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
                while (stream.Read(buffer, 0, buffer.Length) > 0)
                {
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void DropCaches()
    {
        ChildProcess.Run("sync");
        File.WriteAllText("/proc/sys/vm/drop_caches", "3");
    }

    private static void DeleteDirectory(string path)
    {
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }
    }

    private static string FindRepositoryRoot()
    {
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                if (File.Exists(Path.Join(d.FullName, "CsiCache.sln")))
                {
                    return d.FullName;
                }
            }
        }
        throw new InvalidOperationException("run from inside the CsiCache repository (CsiCache.sln not found above the current directory)");
    }

    private string MachineHeader(string repo)
    {
        string cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
        string mem = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal", StringComparison.Ordinal)).Split(':', 2)[1].Trim();
        string kernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        string load = File.ReadAllText("/proc/loadavg").Trim();
        string commit = ChildProcess.Run("git", "-C", repo, "rev-parse", "--short", "HEAD").Output.Trim();
        string rclone = Version("rclone", "version");
        string s3fs = Version("s3fs", "--version");
        string nginx = Version("nginx", "-v");
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; load average at start: {load}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- machine: {cpu}, {Environment.ProcessorCount} cores, {mem} RAM, kernel {kernel}, work dir {_work} ({DriveInfo(_work)})");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- csicache commit {commit}, memory limit {options.MemoryLimit}; {rclone}; {s3fs}; {nginx}; .NET {Environment.Version}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- shape: {options.Shape.Name} — (a) {Format.Bytes(options.Shape.BigFileBytes)}, (b) {options.Shape.SmallFiles:N0} files of ~{options.Shape.SmallMeanBytes / 1000} KB in {options.Shape.SmallDirectories} dirs, " +
            $"(c) {options.Shape.RandomReads:N0} reads of 1 MiB in {options.Shape.Shards}×{Format.Bytes(options.Shape.ShardBytes)}; runs: {options.Runs}");
        return sb.ToString();
    }

    private static string DriveInfo(string path)
    {
        (int code, string output) = ChildProcess.Run("findmnt", "-n", "-o", "FSTYPE,SOURCE", "--target", path);
        return code == 0 ? output.Trim() : "?";
    }

    private static string Version(string tool, string flag)
    {
        try
        {
            (int _, string output) = ChildProcess.Run(tool, flag);
            return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.Trim() ?? tool + " ?";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return tool + " not installed";
        }
    }

    private string Report(string header, List<MountTool> tools)
    {
        var sb = new StringBuilder();
        sb.Append(header);
        sb.AppendLine();
        sb.Append(_results.Markdown(options.Runs));
        sb.AppendLine();
        sb.Append(Targets.Assess(_results, options, tools));
        sb.AppendLine();
        sb.Append(_results.CpuMarkdown());
        if (_results.Notes.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("Failed passes (not counted):");
            foreach (string note in _results.Notes.Distinct().Take(40))
            {
                sb.AppendLine("- " + note);
            }
        }
        return sb.ToString();
    }

    internal static Stopwatch Clock() => Stopwatch.StartNew();
}
