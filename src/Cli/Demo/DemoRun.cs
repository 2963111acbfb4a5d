using System.Diagnostics;
using System.Globalization;
using Csi.V1;
using CsiCache.Cli.Hosting;
using CsiCache.Csi;
using CsiCache.Datasets;
using CsiCache.Node;
using CsiCache.Node.Staging;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Mode = Csi.V1.VolumeCapability.Types.AccessMode.Types.Mode;

namespace CsiCache.Cli.Demo;

/// <summary>
/// <c>csicache demo</c>: the main job on one machine. A generated ImageNet-like dataset is served
/// by an HTTP origin on 127.0.0.1; the plugin runs in this process on a temporary unix socket; the
/// dataset is provisioned, staged and published with the same CSI calls, in the same order and at
/// the same path shapes, as external-provisioner and kubelet use; then every file is read twice
/// through the pod's target path (cold, then from the node cache) and checked byte for byte.
/// Everything it made is taken down again, whatever happens.
/// </summary>
internal sealed class DemoRun(TextWriter output, Serilog.ILogger pluginLogger, int readers)
{
    private const string DriverName = "csicache.dev";
    private readonly List<Func<Task>> _undo = [];

    public async Task<int> RunAsync(CancellationToken ct)
    {
        var root = Directory.CreateTempSubdirectory("csicache-demo-").FullName;
        var total = Stopwatch.StartNew();
        try
        {
            return await RunInAsync(root, ct);
        }
        catch (Exception e) when (ct.IsCancellationRequested && e is OperationCanceledException or RpcException)
        {
            await output.WriteLineAsync("interrupted; cleaning up");
            return 130;
        }
        catch (RpcException e)
        {
            await output.WriteLineAsync($"demo failed: {e.Status.StatusCode}: {e.Status.Detail}");
            return 1;
        }
        finally
        {
            await UndoAllAsync();
            var leftovers = UnmountEverythingUnder(root);
            if (leftovers > 0)
            {
                await output.WriteLineAsync($"warning: {leftovers} mount(s) under {root} had to be removed by force");
            }

            TryDelete(root);
            await output.WriteLineAsync(Directory.Exists(root)
                ? $"cleanup incomplete: {root} could not be removed (something under it is still mounted)"
                : string.Create(CultureInfo.InvariantCulture,
                    $"cleaned up: no mount, plugin, origin or file of the demo is left ({root} removed; {total.Elapsed.TotalSeconds:0.0}s in all)"));
        }
    }

    private async Task<int> RunInAsync(string root, CancellationToken ct)
    {
        // 1. The dataset and its origin.
        var dataset = SampleDataset.Generate(Path.Combine(root, "origin"), SampleDatasetSpec.Demo);
        var origin = await HttpDatasetOrigin.StartAsync(dataset.Root, ct);
        _undo.Add(async () => await origin.DisposeAsync());
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"dataset: {dataset.Files.Count} files, {dataset.TotalBytes / 1e6:0.0} MB (ImageNet-like sample) at {origin.BaseUri}"));

        // 2. The plugin, every service on one unix socket, its directories under the temporary root.
        var socket = Path.Combine(root, "plugin", "csi.sock");
        Directory.CreateDirectory(Path.GetDirectoryName(socket)!);
        var options = new PluginOptions(
            PluginMode.All, CsiEndpoint.Parse("unix://" + socket), DriverName, "demo-node",
            Path.Combine(root, "state"), Path.Combine(root, "local"),
            new DatasetHostOptions { CacheDirectory = Path.Combine(root, "cache"), CacheQuotaBytes = 2L << 30 });
        var app = PluginHost.Build(options, pluginLogger);
        _undo.Add(async () =>
        {
            await app.StopAsync(CancellationToken.None);
            await PluginHost.StopDatasetsAsync(app, pluginLogger);
            await app.DisposeAsync();
        });
        app.Services.GetRequiredService<NodeService>();
        await app.StartAsync(ct);
        options.Endpoint.RestrictPermissions();
        var channel = CsiChannel.Create(socket);
        _undo.Add(() =>
        {
            channel.Dispose();
            return Task.CompletedTask;
        });
        var controller = new global::Csi.V1.Controller.ControllerClient(channel);
        var node = new global::Csi.V1.Node.NodeClient(channel);
        var stager = app.Services.GetRequiredService<FuseDatasetStager>();

        // 3. external-provisioner: CreateVolume from the StorageClass parameters.
        var capability = new VolumeCapability
        {
            Mount = new VolumeCapability.Types.MountVolume(),
            AccessMode = new VolumeCapability.Types.AccessMode { Mode = Mode.MultiNodeReaderOnly },
        };
        var create = new CreateVolumeRequest { Name = "pvc-csicache-demo" };
        create.VolumeCapabilities.Add(capability);
        create.Parameters[VolumeContextKeys.Source] = origin.BaseUri.ToString();
        var volume = (await controller.CreateVolumeAsync(create, cancellationToken: ct)).Volume;
        _undo.Add(async () => await controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = volume.VolumeId }, deadline: Soon()));

        // 4. kubelet: NodeStageVolume at the global mount, NodePublishVolume at the pod's target.
        var paths = new KubeletPaths(root, DriverName);
        var staging = paths.StagingPath(volume.VolumeId);
        var stage = new NodeStageVolumeRequest { VolumeId = volume.VolumeId, StagingTargetPath = staging, VolumeCapability = capability };
        stage.VolumeContext.Add(volume.VolumeContext);
        _undo.Add(async () => await node.NodeUnstageVolumeAsync(
            new NodeUnstageVolumeRequest { VolumeId = volume.VolumeId, StagingTargetPath = staging }, deadline: Soon()));
        await node.NodeStageVolumeAsync(stage, cancellationToken: ct);

        var target = paths.TargetPath(Guid.NewGuid().ToString(), "pvc-csicache-demo");
        var publish = new NodePublishVolumeRequest
        {
            VolumeId = volume.VolumeId, StagingTargetPath = staging, TargetPath = target, VolumeCapability = capability, Readonly = true,
        };
        publish.VolumeContext.Add(volume.VolumeContext);
        _undo.Add(async () => await node.NodeUnpublishVolumeAsync(
            new NodeUnpublishVolumeRequest { VolumeId = volume.VolumeId, TargetPath = target }, deadline: Soon()));
        await node.NodePublishVolumeAsync(publish, cancellationToken: ct);
        await output.WriteLineAsync($"volume {volume.VolumeId}: created, staged at .../{Path.GetRelativePath(root, staging)}");
        await output.WriteLineAsync($"  published at .../{Path.GetRelativePath(root, target)}");

        // 5. The pod's view: the listing must be the origin's, then every file read twice.
        var listed = DatasetReader.List(target);
        var expected = dataset.Files.Select(f => f.RelativePath).Order(StringComparer.Ordinal).ToList();
        var listingMatches = listed.SequenceEqual(expected, StringComparer.Ordinal);

        var passes = new List<(string Name, ReadPass Pass, long OriginRequests, double? HitRatio)>();
        foreach (var name in new[] { "cold", "warm" })
        {
            var requestsBefore = origin.Requests;
            var statsBefore = stager.Find(volume.VolumeId)?.GetStats();
            var pass = DatasetReader.ReadAll(target, dataset.Files, readers, dropPageCache: true, ct);
            var statsAfter = stager.Find(volume.VolumeId)?.GetStats();
            passes.Add((name, pass, origin.Requests - requestsBefore, HitRatio(statsBefore, statsAfter)));
        }

        var stats = await node.NodeGetVolumeStatsAsync(
            new NodeGetVolumeStatsRequest { VolumeId = volume.VolumeId, VolumePath = target }, cancellationToken: ct);

        await output.WriteLineAsync();
        await output.WriteLineAsync("pass   files      MB      MB/s   origin requests   cache hit ratio");
        foreach (var (name, pass, requests, ratio) in passes)
        {
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"{name,-4} {pass.Files,7} {pass.Bytes / 1e6,7:0.0} {pass.MegabytesPerSecond,9:0.0} {requests,17} {(ratio is { } r ? r.ToString("0.00", CultureInfo.InvariantCulture) : "-"),17}"));
        }

        await output.WriteLineAsync();
        var used = stats.Usage.FirstOrDefault(u => u.Unit == VolumeUsage.Types.Unit.Bytes)?.Used ?? 0;
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"NodeGetVolumeStats: {(stats.VolumeCondition.Abnormal ? "ABNORMAL" : "healthy")}, node cache holds {used / 1e6:0.0} MB for this dataset"));

        var mismatches = passes.SelectMany(p => p.Pass.Mismatches.Select(m => $"{p.Name}: {m}")).ToList();
        if (!listingMatches)
        {
            mismatches.Insert(0, $"listing: the mount shows {listed.Count} files, the origin has {expected.Count}"
                + $" (first missing: {expected.Except(listed).FirstOrDefault() ?? "-"}, first extra: {listed.Except(expected).FirstOrDefault() ?? "-"})");
        }

        if (mismatches.Count > 0)
        {
            await output.WriteLineAsync($"FAILED: {mismatches.Count} problem(s):");
            foreach (var line in mismatches.Take(20))
            {
                await output.WriteLineAsync("  " + line);
            }

            return 1;
        }

        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"every byte matched: SHA-256 of all {dataset.Files.Count} files checked on both passes, listing identical to the origin's"));
        return 0;
    }

    private static double? HitRatio(DatasetMountStats? before, DatasetMountStats? after)
    {
        if (before is null || after is null)
        {
            return null;
        }

        var hits = after.CacheHits - before.CacheHits;
        var lookups = hits + (after.CacheMisses - before.CacheMisses);
        return lookups > 0 ? (double)hits / lookups : null;
    }

    private static DateTime Soon() => DateTime.UtcNow.AddSeconds(30);

    /// <summary>Undo in reverse order; one failing step must not stop the others.</summary>
    private async Task UndoAllAsync()
    {
        for (var i = _undo.Count - 1; i >= 0; i--)
        {
            try
            {
                await _undo[i]();
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or OperationCanceledException)
            {
                await output.WriteLineAsync($"cleanup step failed: {e.Message}");
            }
        }

        _undo.Clear();
    }

    /// <summary>The last resort: anything still mounted under the root comes off (lazily if busy).</summary>
    private static int UnmountEverythingUnder(string root)
    {
        var prefix = root.TrimEnd('/') + "/";
        var count = 0;
        foreach (var mount in MountTable.Read().Select(m => m.MountPoint).Where(m => m.StartsWith(prefix, StringComparison.Ordinal))
                     .Distinct().OrderByDescending(m => m.Length))
        {
            try
            {
                Mounter.Unmount(mount);
                count++;
            }
            catch (CsiFaultException)
            {
                // Reported by the caller as a leftover; nothing more to do from here.
            }
        }

        return count;
    }

    private static void TryDelete(string root)
    {
        try
        {
            Directory.Delete(root, recursive: true);
        }
        catch (IOException)
        {
            // Something is still mounted inside; the warning above said so.
        }
    }
}
