namespace CsiCache.Datasets;

/// <summary>
/// Sequential-access detection for one open file, and the chunks to fetch ahead of it. Two reads
/// in sequence start read-ahead; the window then doubles per sequential read up to a maximum, and
/// a jump elsewhere resets it (a random reader should not pay for bytes it will never read).
/// </summary>
/// <remarks>
/// "In sequence" allows some slack: with async reads the kernel has several READs of one file in
/// flight (its own readahead), and they can arrive slightly out of order.
/// <para>One window may see several readers at once: a handle shared by threads, or every reader of
/// a file under zero-message opens (no handles). The lock keeps its state consistent; readers far
/// apart in one file reset each other's window, which costs read-ahead, never correctness.</para>
/// </remarks>
internal sealed class ReadAheadWindow
{
    /// <summary>Slack for out-of-order READs: a few of the kernel's 1 MiB requests.</summary>
    private const long Slack = 4L << 20;

    /// <summary>Chunks ahead on the first sequential read; doubled per sequential read after it.</summary>
    private const int InitialWindow = 2;

    /// <summary>
    /// How far a sequential run must reach before anything is fetched ahead (at least one chunk).
    /// The kernel turns one random 1 MiB pread into several back-to-back READs, plus its own
    /// read-ahead (read_ahead_kb), so a short run proves nothing: counted from two READs, every
    /// random read of a shard fetched up to 8 chunks it would never use.
    /// </summary>
    private const long MinRunBytes = 4L << 20;

    private readonly Lock _gate = new();
    private long _nextOffset = -1;
    private long _runBytes;
    private int _window;
    private long _queuedUntil;
    private volatile bool _inRun;
    private bool _runFromJump;

    /// <summary>
    /// The reads so far form a sequential run long enough to count (<see cref="MinRunBytes"/>):
    /// read-ahead is on (where it is allowed), and no read of it looks random.
    /// </summary>
    public bool InSequentialRun => _inRun;

    /// <summary>
    /// Records a read and returns the chunk range [from, to) that should be fetched ahead now
    /// (empty when none). Each chunk is returned once per sequential run.
    /// </summary>
    public (long From, long To) OnRead(long offset, int length, int chunkSize, long chunkCount, int maxWindow) =>
        OnRead(offset, length, chunkSize, chunkCount, maxWindow, out _);

    /// <summary>
    /// <see cref="OnRead(long, int, int, long, int)"/>, also saying whether this read looks random:
    /// it belongs to a run that began with a jump away from where the reads so far were (or with
    /// a first read that did not start at 0), and that run is not yet long enough to count as
    /// sequential. A reader that starts at 0 and goes on in order never looks random, however its
    /// READs are cut (an unaligned buffer shifts every direct READ); the READs the kernel adds
    /// right after a random pread (the rest of its last page, its read-ahead) look random too.
    /// </summary>
    public (long From, long To) OnRead(long offset, int length, int chunkSize, long chunkCount, int maxWindow, out bool random)
    {
        lock (_gate)
        {
            long end = offset + length;
            bool first = _nextOffset < 0;
            bool sequential = !first && offset >= _nextOffset - Slack && offset <= _nextOffset + Slack;
            _nextOffset = sequential ? Math.Max(_nextOffset, end) : end;
            if (!sequential)
            {
                _runFromJump = !(first && offset == 0);
                random = _runFromJump;
                _runBytes = length;
                _window = 0;
                _queuedUntil = 0;
                _inRun = false;
                return default;
            }
            // Bytes read, not the distance covered: two random reads a slack apart are no run.
            _runBytes += length;
            if (_runBytes < Math.Max(MinRunBytes, chunkSize))
            {
                random = _runFromJump;
                return default;
            }
            _inRun = true;
            random = false;
            if (maxWindow <= 0)
            {
                return default; // read-ahead off: the detection alone
            }

            _window = _window == 0 ? Math.Min(InitialWindow, maxWindow) : Math.Min(_window * 2, maxWindow);
            long current = Math.Max(0, end - 1) / chunkSize;
            long from = Math.Max(current + 1, _queuedUntil);
            long to = Math.Min(chunkCount, current + 1 + _window);
            if (from >= to)
            {
                return default;
            }
            _queuedUntil = to;
            return (from, to);
        }
    }
}
