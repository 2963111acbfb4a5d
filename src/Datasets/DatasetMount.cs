using CsiCache.Fuse;

namespace CsiCache.Datasets;

/// <summary>One mounted dataset: a FUSE session over one origin, sharing the host's caches.</summary>
public sealed class DatasetMount : IAsyncDisposable
{
    private readonly DatasetHost _host;
    private readonly FuseSession _session;
    private readonly ChunkReader _reader;
    private readonly CountingOrigin _origin;
    private readonly MountCounters _counters;
    private readonly CancellationTokenSource _stopping;
    private readonly Task _prefetch;
    private readonly SemaphoreSlim _stopGate = new(1, 1);
    private bool _stopped;

    internal DatasetMount(DatasetHost host, string mountPoint, string source, FuseSession session, DatasetTree tree, ChunkReader reader,
        DatasetFileSystem fileSystem, CountingOrigin origin, MountCounters counters, CancellationTokenSource stopping, Task prefetch, DirectoryReadAhead? readAhead)
    {
        ReadAhead = readAhead;
        _host = host;
        MountPoint = mountPoint;
        Source = source;
        _session = session;
        Tree = tree;
        _reader = reader;
        FileSystem = fileSystem;
        _origin = origin;
        _counters = counters;
        _stopping = stopping;
        _prefetch = prefetch;
    }

    /// <summary>Where the dataset is mounted.</summary>
    public string MountPoint { get; }

    /// <summary>The dataset's credential-free identity (the normalised source, subPath applied).</summary>
    public string Source { get; }

    /// <summary>True while the FUSE session runs and the mount is present in this mount namespace.</summary>
    public bool IsAlive
    {
        get
        {
            if (Volatile.Read(ref _stopped) || _session.Completion.IsCompleted)
            {
                return false;
            }
            try
            {
                return MountInfo.Find(MountPoint) is { IsFuse: true };
            }
            catch (IOException)
            {
                return false;
            }
        }
    }

    internal DatasetTree Tree { get; }

    /// <summary>The FUSE session: what INIT negotiated and what the kernel sent (tests, diagnostics).</summary>
    internal FuseSession Session => _session;

    internal DatasetFileSystem FileSystem { get; }

    /// <summary>This mount's directory read-ahead; null when the host has it off.</summary>
    internal DirectoryReadAhead? ReadAhead { get; }

#pragma warning disable VSTHRD003 // a completion signal for tests
    /// <summary>The background prefetch walk (completed at once when prefetch is none).</summary>
    internal Task PrefetchWalk => _prefetch;
#pragma warning restore VSTHRD003

    /// <summary>This mount's counters; <see cref="DatasetMountStats.CachedBytes"/> counts the cached chunks of the files it has opened or prefetched.</summary>
    public DatasetMountStats GetStats()
    {
        long cached = 0;
        foreach (DatasetEntry entry in Tree.KnownEntries)
        {
            if (entry.Version is { } version)
            {
                try
                {
                    cached += _reader.CachedBytes(version);
                }
                catch (ObjectDisposedException)
                {
                    break; // the host is gone
                }
            }
        }
        return new DatasetMountStats
        {
            OriginRequests = _counters.OriginRequests,
            OriginBytes = _counters.OriginBytes,
            CacheHits = _counters.Hits,
            CacheMisses = _counters.Misses,
            BytesServed = _counters.BytesServed,
            CachedBytes = cached,
        };
    }

    /// <summary>Unmounts (lazily if busy) and stops the session; idempotent.</summary>
    public async Task StopAsync()
    {
        await _stopGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_stopped)
            {
                return;
            }
            Volatile.Write(ref _stopped, true);
            // Cancel first: metadata calls and reads waiting on the origin give up at once, so
            // the reader threads are free to see the unmount.
            await _stopping.CancelAsync().ConfigureAwait(false);
            await _session.StopAsync().ConfigureAwait(false);
            await _session.DisposeAsync().ConfigureAwait(false);
            try
            {
#pragma warning disable VSTHRD003 // our own background walk, started by the host for this mount
                await _prefetch.ConfigureAwait(false);
#pragma warning restore VSTHRD003
            }
            catch (OperationCanceledException)
            {
            }
            if (ReadAhead is not null)
            {
                await ReadAhead.DisposeAsync().ConfigureAwait(false);
            }
            _origin.Dispose();
            _stopping.Dispose();
            _host.Forget(this);
        }
        finally
        {
            _stopGate.Release();
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);
}
