using CsiCache.Origins;
using Microsoft.Extensions.Logging;

namespace CsiCache.Datasets;

/// <summary>
/// The <c>prefetch</c> parameter: after mounting, walk the dataset's directories (metadata) and
/// queue the chunks of every file, or of the files matching the globs, into the node's prefetch
/// pool. One walk per mount, in the background; it stops with the mount. Directory listing happens
/// on this task, the fetching on the pool's workers (which back-pressure the walk).
/// </summary>
internal static partial class DatasetPrefetch
{
    public static async Task RunAsync(DatasetTree tree, ChunkReader reader, DatasetParameters parameters, ILogger logger, CancellationToken ct)
    {
        if (parameters.Prefetch == PrefetchMode.None)
        {
            return;
        }
        long files = 0, directories = 0;
        try
        {
            var pending = new Queue<DatasetEntry>();
            pending.Enqueue(tree.Root);
            while (pending.Count > 0)
            {
                ct.ThrowIfCancellationRequested();
                DatasetEntry directory = pending.Dequeue();
                directories++;
                await foreach (DatasetEntry child in tree.ChildrenAsync(directory, ct).ConfigureAwait(false))
                {
                    if (child.IsDirectory)
                    {
                        pending.Enqueue(child);
                    }
                    else if (child.Kind == OriginEntryKind.File && Wanted(parameters, child.Path))
                    {
                        try
                        {
                            FileVersion version = await tree.ResolveFileAsync(child, ct).ConfigureAwait(false);
                            await reader.QueueWholeFileAsync(version, ct).ConfigureAwait(false);
                            files++;
                        }
                        catch (OriginException e)
                        {
                            LogPrefetchSkipped(logger, child.Path, e.Message);
                        }
                    }
                }
            }
            LogPrefetchQueued(logger, tree.OriginIdentity, directories, files);
        }
        catch (OperationCanceledException)
        {
            // Unmounted before the walk finished.
        }
        catch (Exception e)
        {
            LogPrefetchFailed(logger, tree.OriginIdentity, e.Message);
        }
    }

    private static bool Wanted(DatasetParameters parameters, string path) => parameters.Prefetch switch
    {
        PrefetchMode.All => true,
        PrefetchMode.Globs => parameters.PrefetchGlobs.Any(g => Glob.IsMatch(g, path)),
        _ => false,
    };

    [LoggerMessage(EventId = 3201, Level = LogLevel.Information, Message = "Prefetch of {Source}: walked {Directories} directories, queued {Files} files")]
    private static partial void LogPrefetchQueued(ILogger logger, string source, long directories, long files);

    [LoggerMessage(EventId = 3202, Level = LogLevel.Debug, Message = "Prefetch skipped '{Path}': {Reason}")]
    private static partial void LogPrefetchSkipped(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 3203, Level = LogLevel.Warning, Message = "Prefetch of {Source} stopped: {Reason}")]
    private static partial void LogPrefetchFailed(ILogger logger, string source, string reason);
}
