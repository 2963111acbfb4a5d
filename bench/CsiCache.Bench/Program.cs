using System.CommandLine;
using System.Runtime.InteropServices;
using CsiCache.Bench;

var quick = new Option<bool>("--quick") { Description = "small data set (256 MiB, 2,000 files, 8×64 MiB shards): a couple of minutes" };
var runs = new Option<int>("--runs") { Description = "runs per figure; each figure is their median", DefaultValueFactory = _ => 3 };
var workloads = new Option<string>("--workloads") { Description = "a (sequential), b (small files), c (random shard reads), d (listing)", DefaultValueFactory = _ => "a,b,c,d" };
var tools = new Option<string>("--tools")
{
    Description = "native, origin, csicache, rclone, s3fs; csicache-s3 and rclone-s3 run those over the S3 origin too; "
        + "csicache-pt is csicache with CSICACHE_PASSTHROUGH=1 (passthrough always, not chosen by the first open)",
    DefaultValueFactory = _ => "native,origin,csicache,rclone,s3fs",
};
var workDir = new Option<string>("--work-dir") { Description = "data set, caches and mount points", DefaultValueFactory = _ => "/var/tmp/csicache-bench" };
var csicache = new Option<string?>("--csicache") { Description = "the csicache binary (default: src/Cli/bin/Release/net10.0/csicache, built by bench/run.sh)" };
var memoryLimit = new Option<string>("--memory-limit") { Description = "csicache --memory-limit", DefaultValueFactory = _ => "512Mi" };
var passTimeout = new Option<int>("--pass-timeout") { Description = "seconds one timed pass may take before it is abandoned (and its mount killed)", DefaultValueFactory = _ => 900 };
var output = new Option<string?>("--output") { Description = "also write the markdown report to this file" };

var root = new RootCommand("CsiCache read benchmark: the same bytes read natively, through csicache, rclone and s3fs, and from the origin itself. Prints figures; never passes or fails on them.");
foreach (Option o in new Option[] { quick, runs, workloads, tools, workDir, csicache, memoryLimit, passTimeout, output })
{
    root.Options.Add(o);
}
root.SetAction(parse =>
{
    var options = new BenchOptions(
        parse.GetValue(quick) ? DatasetShape.Quick : DatasetShape.Full,
        Math.Clamp(parse.GetValue(runs), 1, 50),
        BenchOptions.ParseWorkloads(parse.GetValue(workloads)!),
        BenchOptions.ParseList(parse.GetValue(tools)!),
        Path.GetFullPath(parse.GetValue(workDir)!),
        parse.GetValue(csicache),
        parse.GetValue(memoryLimit)!,
        TimeSpan.FromSeconds(Math.Max(10, parse.GetValue(passTimeout))),
        parse.GetValue(output));
    if (!Environment.IsPrivilegedProcess)
    {
        Console.Error.WriteLine("csicache-bench must run as root: it mounts FUSE filesystems and drops the page cache");
        return 1;
    }
    using var cts = new CancellationTokenSource();
    // Ctrl-C / SIGTERM: stop readers, unmount everything, stop every server, then leave.
    void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        Console.Error.WriteLine($"\n{context.Signal}: cleaning up (mounts, servers) ...");
        cts.Cancel();
        Cleanup.RunAll();
        Environment.Exit(130);
    }
    using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
    using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
    AppDomain.CurrentDomain.ProcessExit += (_, _) => Cleanup.RunAll();
    try
    {
        return new Bench(options, Console.Out).Run(cts.Token);
    }
    finally
    {
        Cleanup.RunAll();
    }
});
return root.Parse(args).Invoke();
