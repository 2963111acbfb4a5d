using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace CsiCache.Datasets;

/// <summary>
/// One chunk to fetch in the background: chunk <c>Index</c> of <c>File</c>; or, where <c>File</c> is
/// null, the small file <c>Entry</c> of <c>Tree</c>, whose version its fetch resolves (directory read-ahead).
/// </summary>
internal readonly record struct PrefetchItem(ChunkReader Reader, FileVersion? File, long Index, CancellationToken MountToken, DatasetTree? Tree = null, DatasetEntry? Entry = null)
{
    public string Path => File?.Object.Path ?? Entry?.Path ?? "";

    public Task RunAsync(CancellationToken ct) =>
        File is not null ? Reader.PrefetchAsync(File, Index, ct) : Reader.PrefetchSmallFileAsync(Tree!, Entry!, ct);
}

/// <summary>
/// The node's one bounded pool of background fetchers, shared by sequential read-ahead and dataset
/// prefetch (DESIGN "The cache"). Read-ahead is urgent (a reader is about to want the bytes) and is
/// dropped when its queue is full; dataset prefetch is bulk and waits for room, so a walk over a
/// huge dataset applies back-pressure instead of queueing it all. Workers take urgent items
/// first. Every fetch's buffer comes from the cache's <c>BufferBudget</c>, so prefetch can never
/// take memory beyond the node's bound; and since readers of a chunk being prefetched join its
/// single flight, prefetch never duplicates an origin read.
/// </summary>
internal sealed partial class Prefetcher : IAsyncDisposable
{
    private readonly ConcurrentQueue<PrefetchItem> _urgent = new();
    private readonly ConcurrentQueue<PrefetchItem> _bulk = new();
    private readonly SemaphoreSlim _items = new(0);
    private readonly SemaphoreSlim _bulkSlots;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _workers;
    private readonly int _urgentCapacity;
    private readonly ILogger _logger;
    private int _urgentCount;
    private long _completed;
    private long _dropped;
    private long _failed;
    private int _active;

    public Prefetcher(int workers, int urgentCapacity, int bulkCapacity, ILogger logger)
    {
        _urgentCapacity = urgentCapacity;
        _bulkSlots = new SemaphoreSlim(bulkCapacity, bulkCapacity);
        _logger = logger;
        _workers = new Task[workers];
        for (int i = 0; i < workers; i++)
        {
            _workers[i] = Task.Run(RunWorkerAsync);
        }
    }

    /// <summary>Background fetches finished (fetched, or found cached).</summary>
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>Read-ahead requests dropped because the queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Background fetches that failed (the reader that wants the chunk fetches it itself).</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Items queued, not yet taken by a worker.</summary>
    public int Pending => Volatile.Read(ref _urgentCount) + _bulk.Count;

    /// <summary>True when nothing is queued or being fetched.</summary>
    public bool IsIdle => Pending == 0 && Volatile.Read(ref _active) == 0;

    /// <summary>Queues read-ahead; false (dropped) when the queue is full or the pool is stopping.</summary>
    public bool TryQueueReadAhead(in PrefetchItem item)
    {
        if (_stop.IsCancellationRequested)
        {
            return false;
        }
        if (Interlocked.Increment(ref _urgentCount) > _urgentCapacity)
        {
            Interlocked.Decrement(ref _urgentCount);
            Interlocked.Increment(ref _dropped);
            return false;
        }
        _urgent.Enqueue(item);
        _items.Release();
        return true;
    }

    /// <summary>Queues a bulk prefetch, waiting for room in the queue.</summary>
    public async ValueTask QueueBulkAsync(PrefetchItem item, CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _stop.Token);
        await _bulkSlots.WaitAsync(linked.Token).ConfigureAwait(false);
        _bulk.Enqueue(item);
        _items.Release();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_workers).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }

    private async Task RunWorkerAsync()
    {
        CancellationToken stop = _stop.Token;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await _items.WaitAsync(stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Interlocked.Increment(ref _active);
            try
            {
                await RunItemAsync(stop).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _active);
            }
        }
    }

    private async Task RunItemAsync(CancellationToken stop)
    {
        PrefetchItem item;
        if (_urgent.TryDequeue(out item))
        {
            Interlocked.Decrement(ref _urgentCount);
        }
        else if (_bulk.TryDequeue(out item))
        {
            _bulkSlots.Release();
        }
        else
        {
            return;
        }

        if (item.MountToken.IsCancellationRequested)
        {
            return;
        }
        try
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop, item.MountToken);
            await item.RunAsync(linked.Token).ConfigureAwait(false);
            Interlocked.Increment(ref _completed);
        }
        catch (OperationCanceledException)
        {
            // The mount or the host is stopping.
        }
        catch (Exception e)
        {
            // Best effort: the reader that wants the chunk fetches it itself and gets the error.
            Interlocked.Increment(ref _failed);
            LogPrefetchFailed(_logger, item.Path, item.Index, e.Message);
        }
    }

    [LoggerMessage(EventId = 3101, Level = LogLevel.Debug, Message = "Prefetch of '{Path}' chunk {Index} failed: {Reason}")]
    private static partial void LogPrefetchFailed(ILogger logger, string path, long index, string reason);
}
