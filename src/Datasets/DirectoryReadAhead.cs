using System.Collections.Concurrent;
using System.Threading.Channels;
using CsiCache.Cache;
using CsiCache.Origins;
using Microsoft.Extensions.Logging;

namespace CsiCache.Datasets;

/// <summary>
/// Read-ahead across the files of a directory, for datasets of many small files (an image tree):
/// the first time a mount reads a small file (at most one chunk) of a directory, the directory's
/// other small files are queued for background fetch, in listing order, into the node's prefetch
/// pool. A reader that then opens one of them finds it cached, or joins its fetch in flight.
/// </summary>
/// <remarks>
/// One walk per directory per mount, on one task per mount (directories in the order they were
/// first read from), so the walk's only cost to a reader is a dictionary lookup on a file's first
/// read. Listing only (<c>ls</c>, <c>find</c>, stat) starts nothing: a directory is walked once a
/// file in it is read. Files larger than a chunk are left to sequential read-ahead; a directory's
/// walk stops after an eighth of the cache's quota, so one huge directory cannot churn the cache.
/// The pool's bulk queue is bounded, so the walk waits for room rather than queueing everything.
/// HTTP listings carry no version: there the fetch is the same single GET a first open makes
/// (<see cref="ChunkReader.ResolveForReadAsync"/>), shared with a reader that opens the file meanwhile.
/// </remarks>
internal sealed partial class DirectoryReadAhead : IAsyncDisposable
{
    private readonly DatasetTree _tree;
    private readonly ChunkReader _reader;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private readonly ConcurrentDictionary<ulong, byte> _walked = new();
    private readonly Channel<(DatasetEntry Directory, DatasetEntry Reading)> _pending =
        Channel.CreateUnbounded<(DatasetEntry Directory, DatasetEntry Reading)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly long _maxBytesPerDirectory;
    private readonly Task _walker;
    private long _queued;

    public DirectoryReadAhead(DatasetTree tree, ChunkReader reader, long cacheQuotaBytes, ILogger logger, CancellationToken stopping)
    {
        _tree = tree;
        _reader = reader;
        _logger = logger;
        _stopping = stopping;
        _maxBytesPerDirectory = Math.Max(reader.ChunkSize, cacheQuotaBytes / 8);
        _walker = Task.Run(WalkAsync, CancellationToken.None);
    }

    /// <summary>Small files queued for background fetch so far (tests, diagnostics).</summary>
    public long FilesQueued => Interlocked.Read(ref _queued);

    /// <summary>Directories whose walk has been asked for so far.</summary>
    public int DirectoriesWalked => _walked.Count;

    /// <summary>
    /// Called before <paramref name="file"/> is resolved for a read: on its first read on this mount
    /// (no version yet), when it is small, its directory is queued for a walk unless it was before.
    /// The walk leaves this file to its reader.
    /// </summary>
    public void OnFirstRead(DatasetEntry file)
    {
        if (file.Version is not null || !IsSmallFile(file) || _walked.ContainsKey(file.ParentId))
        {
            return;
        }
        if (_tree.TryGetNode(file.ParentId, out DatasetEntry directory) && directory.IsDirectory && _walked.TryAdd(directory.NodeId, 0))
        {
            _pending.Writer.TryWrite((directory, file));
        }
    }

    public async ValueTask DisposeAsync()
    {
        _pending.Writer.TryComplete();
        try
        {
#pragma warning disable VSTHRD003 // our own walker, started in the constructor
            await _walker.ConfigureAwait(false);
#pragma warning restore VSTHRD003
        }
        catch (OperationCanceledException)
        {
        }
    }

    private bool IsSmallFile(DatasetEntry entry) =>
        entry.Kind == OriginEntryKind.File && entry.Attributes.Size > 0 && entry.Attributes.Size <= _reader.ChunkSize;

    private async Task WalkAsync()
    {
        try
        {
            await foreach ((DatasetEntry directory, DatasetEntry reading) in _pending.Reader.ReadAllAsync(_stopping).ConfigureAwait(false))
            {
                await WalkDirectoryAsync(directory, reading).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // The mount is stopping.
        }
    }

    private async Task WalkDirectoryAsync(DatasetEntry directory, DatasetEntry reading)
    {
        long bytes = 0;
        int files = 0;
        try
        {
            await foreach (DatasetEntry child in _tree.ChildrenAsync(directory, _stopping).ConfigureAwait(false))
            {
                if (ReferenceEquals(child, reading) || !IsSmallFile(child) || (child.Version is { } known && _reader.Cache.Contains(new ChunkKey(known.Key, 0))))
                {
                    continue;
                }
                await _reader.QueueSmallFileAsync(_tree, child, _stopping).ConfigureAwait(false);
                bytes += child.Attributes.Size;
                files++;
                Interlocked.Increment(ref _queued);
                if (bytes >= _maxBytesPerDirectory)
                {
                    break;
                }
            }
            LogWalked(_logger, directory.Path, files, bytes);
        }
        catch (Exception e) when (e is OriginException or ObjectDisposedException or IOException)
        {
            // Best effort: readers fetch what they need themselves and get the error there.
            LogWalkFailed(_logger, directory.Path, e.Message);
        }
    }

    [LoggerMessage(EventId = 3111, Level = LogLevel.Debug, Message = "Directory read-ahead of '{Path}': {Files} small files ({Bytes} bytes) queued")]
    private static partial void LogWalked(ILogger logger, string path, int files, long bytes);

    [LoggerMessage(EventId = 3112, Level = LogLevel.Debug, Message = "Directory read-ahead of '{Path}' stopped: {Reason}")]
    private static partial void LogWalkFailed(ILogger logger, string path, string reason);
}
