using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Cache;

/// <summary>
/// Batched durability for a disk cache. Instead of one fsync per chunk (which on a cold read of
/// small files costs more than the origin fetch itself), chunks are written into their object
/// files without a flush, and every <see cref="ChunkCacheOptions.SyncInterval"/> one
/// <c>syncfs(2)</c> makes everything written so far durable at once. A marker file then records
/// the point in time up to which that holds:
/// <code>
/// ROOT/SYNCED   "synced-before TICKS"  object files with an mtime at or after TICKS may hold a torn chunk
///               "clean"                the last owner stopped cleanly: every indexed chunk is whole
/// </code>
/// At start, after a crash (marker not "clean"), object files modified at or after TICKS are
/// deleted whole: after a power loss a chunk in them may have the right extent and the wrong
/// bytes (zeros), and a cache must never serve those. What is lost is at most one interval of
/// fetched objects, and objects whose access time was refreshed in that interval.
/// </summary>
/// <remarks>
/// Why TICKS is safe: a store holds the shared side of <see cref="_gate"/> from the moment it
/// reads the clock for the file's mtime until the chunk is indexed, and so does an access-time
/// refresh from its clock read to its mtime update; the checkpoint reads the clock under the
/// exclusive side, so every file with an earlier mtime was fully written before the
/// <c>syncfs</c> that follows, and no refresh that read the clock earlier can land later. The
/// kernel also stamps a file while a write is in progress, from a coarser clock; the marker sits
/// <see cref="s_clockSlackTicks"/> before the checkpoint so that such a stamp still counts as after it.
/// </remarks>
internal sealed class SyncCheckpoint : IDisposable
{
    private const string MarkerName = "SYNCED";
    private const string CleanText = "clean\n";
    private const string SyncedPrefix = "synced-before ";

    /// <summary>
    /// How far a file's mtime, stamped by the kernel from its coarse clock during a write, may lag
    /// our clock: a write that starts just after a checkpoint can carry a stamp a tick before it.
    /// The marker names a point this much before the checkpoint, and a checkpoint first lets the
    /// newest change age past it, so nothing it covers is lost.
    /// </summary>
    private static readonly long s_clockSlackTicks = TimeSpan.FromMilliseconds(20).Ticks;

    private readonly string _marker;
    private readonly string _root;
    private readonly SafeFileHandle _anyFileOnFs;
    private readonly TimeProvider _time;
    private readonly ReaderWriterLockSlim _gate = new(LockRecursionPolicy.NoRecursion);
    private readonly Lock _checkpointLock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _loop;
    private long _changesSinceCheckpoint;
    private long _lastChangeTicks;
    private long _checkpoints;
    private bool _closed;

    /// <summary>Starts the periodic checkpoint; <paramref name="anyFileOnFs"/> (kept open by the caller) names the file system to sync.</summary>
    public SyncCheckpoint(string root, SafeFileHandle anyFileOnFs, TimeProvider time, TimeSpan interval)
    {
        _root = root;
        _marker = Path.Combine(root, MarkerName);
        _anyFileOnFs = anyFileOnFs;
        _time = time;
        // Written (durably) before the first chunk: from here on a crash must not look clean.
        WriteMarker(SyncedBefore(time.GetUtcNow().UtcTicks - s_clockSlackTicks));
        // A thread of its own: syncfs blocks for as long as the disk takes, which must not hold a pool thread.
        _loop = new Thread(() => Run(interval, _stop.Token)) { IsBackground = true, Name = "cache-sync" };
        _loop.Start();
    }

    /// <summary>syncfs calls that advanced the marker.</summary>
    public long Checkpoints => Interlocked.Read(ref _checkpoints);

    /// <summary>
    /// The marker left by the last owner of <paramref name="root"/>: null when every chunk file is
    /// whole (a clean stop, or a cache that predates checkpoints and flushed each chunk),
    /// otherwise the tick from which chunk files must be discarded (0 when the marker is unreadable).
    /// </summary>
    public static long? ReadUnsafeSince(string root)
    {
        string path = Path.Combine(root, MarkerName);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        if (text == CleanText)
        {
            return null;
        }
        return text.StartsWith(SyncedPrefix, StringComparison.Ordinal)
            && long.TryParse(text.AsSpan(SyncedPrefix.Length).TrimEnd('\n'), NumberStyles.None, CultureInfo.InvariantCulture, out long ticks)
            ? ticks
            : 0;
    }

    /// <summary>Makes every earlier change of the file system durable (used at start, after deleting torn files).</summary>
    public static void SyncFileSystem(SafeFileHandle anyFileOnFs)
    {
        if (CacheNative.SyncFs(anyFileOnFs) != 0)
        {
            throw new IOException($"syncfs failed: {Marshal.GetLastPInvokeErrorMessage()}", Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>Enter before reading the clock for an object file's mtime; <see cref="EndWrite"/> once the chunk is indexed. Same thread.</summary>
    public void BeginWrite() => _gate.EnterReadLock();

    public void EndWrite()
    {
        _gate.ExitReadLock();
        NoteChange();
    }

    /// <summary>True when every change so far is covered by a finished checkpoint (none running, none due).</summary>
    public bool IsSettled
    {
        get
        {
            lock (_checkpointLock)
            {
                return Interlocked.Read(ref _changesSinceCheckpoint) == 0;
            }
        }
    }

    /// <summary>An object file's mtime was moved forward: it now looks unsynced until the next checkpoint.</summary>
    public void NoteTouched() => NoteChange();

    private void NoteChange()
    {
        long now = _time.GetUtcNow().UtcTicks;
        long seen = Volatile.Read(ref _lastChangeTicks);
        while (seen < now && Interlocked.CompareExchange(ref _lastChangeTicks, now, seen) is long actual && actual != seen)
        {
            seen = actual;
        }
        Interlocked.Increment(ref _changesSinceCheckpoint);
    }

    /// <summary>One checkpoint now, if anything changed since the last.</summary>
    public void Checkpoint()
    {
        lock (_checkpointLock)
        {
            if (_closed || Interlocked.Exchange(ref _changesSinceCheckpoint, 0) == 0)
            {
                return;
            }
            // Thread.Sleep works in whole milliseconds, rounded down: check again after each (a
            // few times only: a test's frozen clock never moves).
            long age;
            for (int tries = 0; tries < 4 && (age = _time.GetUtcNow().UtcTicks - Volatile.Read(ref _lastChangeTicks)) < s_clockSlackTicks; tries++)
            {
                Thread.Sleep(TimeSpan.FromTicks(s_clockSlackTicks - age + TimeSpan.TicksPerMillisecond));
            }
            long before;
            _gate.EnterWriteLock();
            try
            {
                before = _time.GetUtcNow().UtcTicks;
            }
            finally
            {
                _gate.ExitWriteLock();
            }
            SyncFileSystem(_anyFileOnFs);
            WriteMarker(SyncedBefore(before - s_clockSlackTicks));
            Interlocked.Increment(ref _checkpoints);
        }
    }

    /// <summary>
    /// Stops the loop. <paramref name="clean"/>: waits for stores in progress, syncs and marks the
    /// root clean (the owner has stopped new stores first). Not clean: leaves the marker as it is,
    /// as a crash would (tests).
    /// </summary>
    public void Close(bool clean)
    {
        _stop.Cancel();
        if (_loop.ManagedThreadId != Environment.CurrentManagedThreadId)
        {
            _loop.Join();
        }
        lock (_checkpointLock)
        {
            if (_closed)
            {
                return;
            }
            _closed = true;
            if (clean)
            {
                _gate.EnterWriteLock();
                _gate.ExitWriteLock();
                try
                {
                    SyncFileSystem(_anyFileOnFs);
                    WriteMarker(CleanText);
                }
                catch (IOException)
                {
                    // The marker still names the last checkpoint: the next start discards a little more than it must.
                }
            }
        }
    }

    public void Dispose()
    {
        Close(clean: false);
        _stop.Dispose();
        _gate.Dispose();
    }

    private void Run(TimeSpan interval, CancellationToken stop)
    {
        while (!stop.WaitHandle.WaitOne(interval))
        {
            try
            {
                Checkpoint();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Disk trouble: the marker keeps its older time, which stays safe; try again next tick.
                Interlocked.Increment(ref _changesSinceCheckpoint);
            }
        }
    }

    private static string SyncedBefore(long ticks) => string.Create(CultureInfo.InvariantCulture, $"{SyncedPrefix}{ticks}\n");

    /// <summary>temp, fsync, rename, fsync the folder: the marker is either the old or the new one, durably.</summary>
    private void WriteMarker(string text)
    {
        string temp = _marker + ".tmp";
        using (SafeFileHandle handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write))
        {
            RandomAccess.Write(handle, System.Text.Encoding.ASCII.GetBytes(text), 0);
            RandomAccess.FlushToDisk(handle);
        }
        File.Move(temp, _marker, overwrite: true);
        int dir = CacheNative.OpenDirectory(_root);
        if (dir < 0)
        {
            throw new IOException($"open {_root}: {Marshal.GetLastPInvokeErrorMessage()}");
        }
        try
        {
            if (CacheNative.Fsync(dir) != 0)
            {
                throw new IOException($"fsync {_root}: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }
        finally
        {
            _ = CacheNative.Close(dir);
        }
    }
}
