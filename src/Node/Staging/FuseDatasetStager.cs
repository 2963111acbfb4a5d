using System.Collections.Concurrent;
using CsiCache.Csi;
using CsiCache.Datasets;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace CsiCache.Node.Staging;

/// <summary>
/// Stages dataset volumes as FUSE sessions of one node-wide <see cref="DatasetHost"/>, so every
/// volume of the same dataset reads through the same cache. It keeps the live
/// <see cref="DatasetMount"/> per volume id; the node service keeps the record of what is staged
/// where. Dataset failures become the CSI code kubelet acts on: UNAVAILABLE and the other
/// transient codes are retried with back-off, INVALID_ARGUMENT and NOT_FOUND surface on the pod.
/// </summary>
public sealed partial class FuseDatasetStager : IDatasetStager, IAsyncDisposable
{
    /// <summary>
    /// The longest a stage may take before we give up and answer UNAVAILABLE. kubelet cancels a
    /// NodeStageVolume after 2 minutes (its csiTimeout); answering before that with a clear
    /// reason beats an opaque DEADLINE_EXCEEDED, and a mount that hangs on a dead origin must not
    /// hold the volume's lock for ever.
    /// </summary>
    public static readonly TimeSpan DefaultStageTimeout = TimeSpan.FromSeconds(90);

    // Volume-context keys the dataset layer understands; the rest (csicache.dev/kind, the
    // csi.storage.k8s.io/* keys kubelet adds) are ours or kubelet's and stay here.
    private static readonly string[] DatasetKeys =
    [
        VolumeContextKeys.SubPath, VolumeContextKeys.CacheMedium, VolumeContextKeys.Prefetch, VolumeContextKeys.Refresh,
        VolumeContextKeys.Endpoint, VolumeContextKeys.Region, VolumeContextKeys.PathStyle,
    ];

    private readonly DatasetHost _host;
    private readonly TimeSpan _stageTimeout;
    private readonly ILogger<FuseDatasetStager> _logger;
    private readonly ConcurrentDictionary<string, DatasetMount> _mounts = new(StringComparer.Ordinal);

    public FuseDatasetStager(DatasetHost host, ILogger<FuseDatasetStager> logger, TimeSpan? stageTimeout = null)
    {
        _host = host;
        _logger = logger;
        _stageTimeout = stageTimeout ?? DefaultStageTimeout;
    }

    /// <summary>Volumes with a FUSE session of this process (alive or not).</summary>
    public int Count => _mounts.Count;

    public async Task StageAsync(string volumeId, IReadOnlyDictionary<string, string> volumeContext,
        IReadOnlyDictionary<string, string> secrets, string stagingPath, CancellationToken ct)
    {
        if (_mounts.TryGetValue(volumeId, out var existing))
        {
            if (existing.IsAlive && SamePath(existing.MountPoint, stagingPath))
            {
                return;
            }

            // A session that died (or one at another path the node service has since forgotten):
            // replace it rather than answer from a dead mount.
            await StopAsync(volumeId, existing);
        }

        if (!volumeContext.TryGetValue(VolumeContextKeys.Source, out var source) || string.IsNullOrWhiteSpace(source))
        {
            throw new CsiFaultException(StatusCode.InvalidArgument,
                $"volume {volumeId}: the volume context has no '{VolumeContextKeys.Source}'; dataset volumes need one (s3://, http(s)://, file://)");
        }

        // A FUSE mount left at this path by a plugin that died answers ENOTCONN and blocks a new mount there.
        if (StaleDatasetMounts.CleanupAt(stagingPath))
        {
            LogStaleRemoved(volumeId, stagingPath);
        }

        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var key in DatasetKeys)
        {
            if (volumeContext.TryGetValue(key, out var value))
            {
                parameters[key] = value;
            }
        }

        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(_stageTimeout);
        DatasetMount mount;
        try
        {
            mount = await _host.MountAsync(new DatasetMountOptions(source, parameters, secrets, stagingPath), bounded.Token);
        }
        catch (DatasetException e)
        {
            var code = CodeFor(e.Kind);
            var message = $"volume {volumeId}: {Describe(e.Kind)}: {Scrub(e.Message, secrets)}";
            LogStageFailed(volumeId, code.ToString(), message);
            throw new CsiFaultException(code, message);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            var message = $"volume {volumeId}: the dataset did not mount within {_stageTimeout.TotalSeconds:0}s; the origin is too slow or not answering";
            LogStageFailed(volumeId, nameof(StatusCode.Unavailable), message);
            throw new CsiFaultException(StatusCode.Unavailable, message);
        }

        _mounts[volumeId] = mount;
        LogStaged(volumeId, stagingPath);
    }

    public async Task UnstageAsync(string volumeId, string stagingPath, CancellationToken ct)
    {
        if (_mounts.TryRemove(volumeId, out var mount))
        {
            await StopAsync(volumeId, mount);
            LogUnstaged(volumeId, stagingPath);
        }
    }

    public bool IsServing(string volumeId) => _mounts.TryGetValue(volumeId, out var mount) && mount.IsAlive;

    public long? CachedBytes(string volumeId) =>
        _mounts.TryGetValue(volumeId, out var mount) ? mount.GetStats().CachedBytes : null;

    /// <summary>The live mount of a volume, for stats and tests; null when not staged by this process.</summary>
    public DatasetMount? Find(string volumeId) => _mounts.TryGetValue(volumeId, out var mount) ? mount : null;

    /// <summary>Stops every session (unmounting it). The host itself belongs to whoever made it.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var volumeId in _mounts.Keys.ToList())
        {
            if (_mounts.TryRemove(volumeId, out var mount))
            {
                await StopAsync(volumeId, mount);
            }
        }
    }

    /// <summary>The CSI code for each dataset failure; kubelet retries the transient ones.</summary>
    public static StatusCode CodeFor(DatasetErrorKind kind) => kind switch
    {
        DatasetErrorKind.InvalidSource => StatusCode.InvalidArgument,
        DatasetErrorKind.NotFound => StatusCode.NotFound,
        DatasetErrorKind.OriginUnavailable => StatusCode.Unavailable,
        DatasetErrorKind.AccessDenied => StatusCode.PermissionDenied,
        DatasetErrorKind.MountFailed => StatusCode.Internal,
        _ => StatusCode.Internal,
    };

    private static string Describe(DatasetErrorKind kind) => kind switch
    {
        DatasetErrorKind.InvalidSource => "the dataset source or its parameters are not valid",
        DatasetErrorKind.NotFound => "the dataset does not exist at its origin",
        DatasetErrorKind.OriginUnavailable => "the dataset's origin is not reachable (kubelet will retry)",
        DatasetErrorKind.AccessDenied => "the origin refused the credentials given in the node-stage secret",
        DatasetErrorKind.MountFailed => "the FUSE mount failed",
        _ => "the dataset could not be staged",
    };

    /// <summary>
    /// The dataset layer promises messages without secrets; this is the second lock on that door:
    /// any secret value that still appears is blanked before it reaches kubectl or the log.
    /// </summary>
    internal static string Scrub(string message, IReadOnlyDictionary<string, string> secrets)
    {
        foreach (var value in secrets.Values)
        {
            // Very short values ("1", "true") would blank ordinary words and protect nothing.
            if (value.Length >= 4)
            {
                message = message.Replace(value, "[redacted]", StringComparison.Ordinal);
            }
        }

        return message;
    }

    private async Task StopAsync(string volumeId, DatasetMount mount)
    {
        try
        {
            await mount.StopAsync();
        }
        finally
        {
            await mount.DisposeAsync();
            _ = _mounts.TryRemove(new KeyValuePair<string, DatasetMount>(volumeId, mount));
        }
    }

    private static bool SamePath(string a, string b) => MountTable.Normalise(a) == MountTable.Normalise(b);

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "dataset {VolumeId} staged at {StagingPath}")]
    private partial void LogStaged(string volumeId, string stagingPath);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "dataset {VolumeId} unstaged from {StagingPath}")]
    private partial void LogUnstaged(string volumeId, string stagingPath);

    [LoggerMessage(EventId = 302, Level = LogLevel.Debug, Message = "dataset {VolumeId} not staged ({Code}): {Reason}")]
    private partial void LogStageFailed(string volumeId, string code, string reason);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "dataset {VolumeId}: removed a dead FUSE mount left at {StagingPath} by an earlier plugin")]
    private partial void LogStaleRemoved(string volumeId, string stagingPath);
}
