using System.Collections.Concurrent;
using System.Security.Cryptography;
using CsiCache.Csi;
using CsiCache.Datasets;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace CsiCache.Node.Staging;

/// <summary>
/// Stages dataset volumes through one node-wide <see cref="DatasetHost"/>. Volumes of the same
/// dataset (same source, parameters and secrets) share one FUSE session: it is mounted once under
/// <c>sessionRoot</c> and bind-mounted read-only at each volume's staging path, so the second
/// volume's pods find the metadata and the data already on the node (and the node holds one inode
/// tree per dataset, not one per volume). The session stops when its last volume is unstaged.
/// Dataset failures become the CSI code kubelet acts on: UNAVAILABLE is retried with back-off;
/// INVALID_ARGUMENT, NOT_FOUND and PERMISSION_DENIED surface on the pod's events.
/// </summary>
/// <remarks>
/// Locking: the node service holds a per-volume lock around each call; here a per-session-key
/// lock serialises the volumes that share a session (a slow origin holds up only its own
/// dataset). The lock objects are kept for the life of the process, one per distinct dataset.
/// </remarks>
public sealed partial class FuseDatasetStager : IDatasetStager, IAsyncDisposable
{
    /// <summary>
    /// The longest a stage may take before we give up and answer UNAVAILABLE. kubelet cancels a
    /// NodeStageVolume after 2 minutes (its csiTimeout); answering before that with a clear
    /// reason beats an opaque DEADLINE_EXCEEDED, and a mount hanging on a dead origin must not
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
    private readonly string _sessionRoot;
    private readonly TimeSpan _stageTimeout;
    private readonly ILogger<FuseDatasetStager> _logger;
    private readonly byte[] _salt = RandomNumberGenerator.GetBytes(32);
    private readonly ConcurrentDictionary<string, DatasetSession> _sessions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DatasetSession> _volumes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _keyLocks = new(StringComparer.Ordinal);

    /// <param name="sessionRoot">A directory of this plugin's where sessions are mounted (one subdirectory each).</param>
    public FuseDatasetStager(DatasetHost host, string sessionRoot, ILogger<FuseDatasetStager> logger, TimeSpan? stageTimeout = null)
    {
        _host = host;
        _sessionRoot = MountTable.Normalise(sessionRoot);
        _logger = logger;
        _stageTimeout = stageTimeout ?? DefaultStageTimeout;
        Directory.CreateDirectory(_sessionRoot);
    }

    /// <summary>FUSE sessions of this process (alive or not).</summary>
    public int Count => _sessions.Count;

    public async Task StageAsync(string volumeId, IReadOnlyDictionary<string, string> volumeContext,
        IReadOnlyDictionary<string, string> secrets, string stagingPath, CancellationToken ct)
    {
        stagingPath = MountTable.Normalise(stagingPath);
        if (!volumeContext.TryGetValue(VolumeContextKeys.Source, out var source) || string.IsNullOrWhiteSpace(source))
        {
            throw new CsiFaultException(StatusCode.InvalidArgument,
                $"volume {volumeId}: the volume context has no '{VolumeContextKeys.Source}'; dataset volumes need one (s3://, http(s)://, file://)");
        }

        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var key in DatasetKeys)
        {
            if (volumeContext.TryGetValue(key, out var value))
            {
                parameters[key] = value;
            }
        }

        var sessionKey = DatasetSession.KeyOf(source, parameters, secrets, _salt);

        // Staged before with another dataset spec, or at another path (the node service has since
        // forgotten it): let go of that first, under that session's lock.
        if (_volumes.TryGetValue(volumeId, out var previous)
            && (previous.Key != sessionKey || previous.Volumes.GetValueOrDefault(volumeId) != stagingPath))
        {
            await ReleaseAsync(volumeId, previous);
        }

        var gate = _keyLocks.GetOrAdd(sessionKey, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        try
        {
            if (_volumes.TryGetValue(volumeId, out var current) && current.Key == sessionKey && current.Mount.IsAlive
                && MountTable.IsMountPoint(stagingPath))
            {
                return;
            }

            var session = await SessionForAsync(volumeId, sessionKey, source, parameters, secrets, ct);

            // A FUSE mount left at this path by a plugin that died answers ENOTCONN and blocks a new mount there.
            if (StaleDatasetMounts.CleanupAt(stagingPath))
            {
                LogStaleRemoved(volumeId, stagingPath);
            }

            Mounter.Unmount(stagingPath);
            try
            {
                Directory.CreateDirectory(stagingPath);
                Mounter.Bind(session.Directory, stagingPath, readOnly: true);
            }
            catch
            {
                if (session.Volumes.IsEmpty)
                {
                    await StopSessionAsync(session);
                }

                throw;
            }

            session.Volumes[volumeId] = stagingPath;
            _volumes[volumeId] = session;
            LogStaged(volumeId, stagingPath, session.Key, session.Volumes.Count);
        }
        finally
        {
            gate.Release();
        }
    }

    public async Task UnstageAsync(string volumeId, string stagingPath, CancellationToken ct)
    {
        if (_volumes.TryGetValue(volumeId, out var session))
        {
            await ReleaseAsync(volumeId, session);
            LogUnstaged(volumeId, stagingPath);
        }
    }

    public bool IsServing(string volumeId) => _volumes.TryGetValue(volumeId, out var session) && session.Mount.IsAlive;

    public long? CachedBytes(string volumeId) =>
        _volumes.TryGetValue(volumeId, out var session) ? session.Mount.GetStats().CachedBytes : null;

    /// <summary>The FUSE session serving a volume (shared with the other volumes of its dataset); null when not staged here.</summary>
    public DatasetMount? Find(string volumeId) => _volumes.TryGetValue(volumeId, out var session) ? session.Mount : null;

    /// <summary>Stops every session (unmounting it and the volumes' bind mounts). The host belongs to whoever made it.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var session in _sessions.Values.ToList())
        {
            foreach (var path in session.Volumes.Values.ToList())
            {
                TryUnmount(path);
            }

            await StopSessionAsync(session);
        }

        _volumes.Clear();
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

    /// <summary>The live session for a key, or a new one mounted under the session root. Called under the key's lock.</summary>
    private async Task<DatasetSession> SessionForAsync(string volumeId, string key, string source,
        Dictionary<string, string> parameters, IReadOnlyDictionary<string, string> secrets, CancellationToken ct)
    {
        if (_sessions.TryGetValue(key, out var existing))
        {
            if (existing.Mount.IsAlive)
            {
                return existing;
            }

            // Its FUSE connection died: the volumes bound to it are dead too, and are re-bound as kubelet stages them again.
            LogSessionDead(existing.Key, existing.Volumes.Count);
            await StopSessionAsync(existing);
        }

        var directory = Path.Combine(_sessionRoot, key);
        StaleDatasetMounts.CleanupAt(directory);
        Directory.CreateDirectory(directory);

        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(_stageTimeout);
        DatasetMount mount;
        try
        {
            mount = await _host.MountAsync(new DatasetMountOptions(source, parameters, secrets, directory), bounded.Token);
        }
        catch (DatasetException e)
        {
            TryRemoveDirectory(directory);
            var code = CodeFor(e.Kind);
            var message = $"volume {volumeId}: {Describe(e.Kind)}: {Scrub(e.Message, secrets)}";
            LogStageFailed(volumeId, code.ToString(), message);
            throw new CsiFaultException(code, message);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            TryRemoveDirectory(directory);
            var message = $"volume {volumeId}: the dataset did not mount within {_stageTimeout.TotalSeconds:0}s; the origin is too slow or not answering";
            LogStageFailed(volumeId, nameof(StatusCode.Unavailable), message);
            throw new CsiFaultException(StatusCode.Unavailable, message);
        }
        catch
        {
            TryRemoveDirectory(directory);
            throw;
        }

        var session = new DatasetSession(key, directory, mount);
        _sessions[key] = session;
        LogSessionStarted(key);
        return session;
    }

    /// <summary>Unbinds a volume from its session and stops the session when no volume is left on it.</summary>
    private async Task ReleaseAsync(string volumeId, DatasetSession session)
    {
        var gate = _keyLocks.GetOrAdd(session.Key, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync();
        try
        {
            if (session.Volumes.TryRemove(volumeId, out var stagingPath))
            {
                TryUnmount(stagingPath);
            }

            _ = _volumes.TryRemove(new KeyValuePair<string, DatasetSession>(volumeId, session));
            if (session.Volumes.IsEmpty)
            {
                await StopSessionAsync(session);
            }
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task StopSessionAsync(DatasetSession session)
    {
        try
        {
            await session.Mount.StopAsync();
        }
        finally
        {
            await session.Mount.DisposeAsync();
            _ = _sessions.TryRemove(new KeyValuePair<string, DatasetSession>(session.Key, session));
            TryUnmount(session.Directory);
            TryRemoveDirectory(session.Directory);
            LogSessionStopped(session.Key);
        }
    }

    private void TryUnmount(string path)
    {
        try
        {
            Mounter.Unmount(path);
        }
        catch (CsiFaultException e)
        {
            LogUnmountFailed(path, e.Message);
        }
    }

    private static void TryRemoveDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path) && !MountTable.IsMountPoint(path) && !Directory.EnumerateFileSystemEntries(path).Any())
            {
                Directory.Delete(path);
            }
        }
        catch (IOException)
        {
            // Left for the next cleanup; an empty directory harms nothing.
        }
    }

    private static string Describe(DatasetErrorKind kind) => kind switch
    {
        DatasetErrorKind.InvalidSource => "the dataset source or its parameters are not valid",
        DatasetErrorKind.NotFound => "the dataset does not exist at its origin",
        DatasetErrorKind.OriginUnavailable => "the dataset's origin is not reachable (kubelet will retry)",
        DatasetErrorKind.AccessDenied => "the origin refused the credentials given in the node-stage secret",
        DatasetErrorKind.MountFailed => "the FUSE mount failed",
        _ => "the dataset could not be staged",
    };

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "dataset {VolumeId} staged at {StagingPath} (session {Session}, {Volumes} volume(s) on it)")]
    private partial void LogStaged(string volumeId, string stagingPath, string session, int volumes);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "dataset {VolumeId} unstaged from {StagingPath}")]
    private partial void LogUnstaged(string volumeId, string stagingPath);

    [LoggerMessage(EventId = 302, Level = LogLevel.Debug, Message = "dataset {VolumeId} not staged ({Code}): {Reason}")]
    private partial void LogStageFailed(string volumeId, string code, string reason);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "dataset {VolumeId}: removed a dead FUSE mount left at {StagingPath} by an earlier plugin")]
    private partial void LogStaleRemoved(string volumeId, string stagingPath);

    [LoggerMessage(EventId = 304, Level = LogLevel.Information, Message = "dataset session {Session} started")]
    private partial void LogSessionStarted(string session);

    [LoggerMessage(EventId = 305, Level = LogLevel.Information, Message = "dataset session {Session} stopped")]
    private partial void LogSessionStopped(string session);

    [LoggerMessage(EventId = 306, Level = LogLevel.Warning, Message = "dataset session {Session} died; {Volumes} volume(s) on it must be staged again")]
    private partial void LogSessionDead(string session, int volumes);

    [LoggerMessage(EventId = 307, Level = LogLevel.Warning, Message = "could not unmount {Path}: {Reason}")]
    private partial void LogUnmountFailed(string path, string reason);
}
