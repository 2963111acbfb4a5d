using CsiCache.Fuse.Protocol;

namespace CsiCache.Fuse;

/// <summary>
/// A mounted FUSE filesystem being served: the /dev/fuse descriptor, its clones, one reader thread
/// per descriptor, and the <see cref="FuseDispatcher"/> they feed.
/// </summary>
/// <remarks>
/// Each reader owns a pinned request buffer and a pinned reply buffer for its whole life; READ
/// replies come from the dispatcher's bounded pool. Nothing is allocated per request on the
/// paths that matter (LOOKUP, GETATTR, READ served synchronously, READDIR).
/// <para>Stopping unmounts (detaching if busy), which makes the kernel end the connection so every
/// reader's read(2) fails with ENODEV and the thread exits; then the descriptors close.</para>
/// </remarks>
public sealed class FuseSession : IAsyncDisposable
{
    private static readonly TimeSpan DefaultInitTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ReaderExitTimeout = TimeSpan.FromSeconds(5);

    private readonly FuseOptions _options;
    private readonly FuseDevice _device;
    private readonly List<FuseDevice> _readerDevices = [];
    private readonly FuseDispatcher _dispatcher;
    private readonly TaskCompletionSource _readersDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _stopLock = new(1, 1);
    private int _runningReaders;
    private MountInfoEntry? _mountEntry; // its device number names the connection in fusectl and sysfs
    private bool _mounted;
    private bool _stopped;

    private FuseSession(string mountPoint, FuseDevice device, IFuseFileSystem fileSystem, FuseOptions options)
    {
        MountPoint = mountPoint;
        _options = options;
        _device = device;
        _dispatcher = new FuseDispatcher(fileSystem, options) { BackingDevice = device };
    }

    /// <summary>Where the filesystem is mounted.</summary>
    public string MountPoint { get; }

    /// <summary>What INIT negotiated; null until then.</summary>
    public FuseConnection? Connection => _dispatcher.Connection;

    /// <summary>True when opens may be answered with passthrough backing files.</summary>
    public bool PassthroughEnabled => _dispatcher.Connection?.PassthroughEnabled == true;

    /// <summary>True when the kernel offered zero-message opens (see <see cref="FuseConnection.NoOpenSupported"/>).</summary>
    public bool NoOpenSupported => _dispatcher.Connection?.NoOpenSupported == true;

    /// <summary>True when the kernel offered zero-message opendirs (see <see cref="FuseConnection.NoOpendirSupported"/>).</summary>
    public bool NoOpendirSupported => _dispatcher.Connection?.NoOpendirSupported == true;

    /// <summary>Requests of <paramref name="opcode"/> received from the kernel so far (see <see cref="FuseDispatcher.RequestCount"/>).</summary>
    public long RequestCount(FuseOpcode opcode) => _dispatcher.RequestCount(opcode);

    /// <summary>Completes when every reader has stopped (unmounted, aborted, or the device failed).</summary>
#pragma warning disable VSTHRD003 // a completion signal for callers
    public Task Completion => _readersDone.Task;
#pragma warning restore VSTHRD003

    /// <summary>
    /// Opens /dev/fuse, mounts <paramref name="fileSystem"/> at <paramref name="mountPoint"/> (an
    /// existing directory), starts the readers and returns once INIT is answered, so the mount is
    /// ready for use. Needs CAP_SYS_ADMIN.
    /// </summary>
    public static async Task<FuseSession> MountAsync(string mountPoint, IFuseFileSystem fileSystem, FuseOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        options ??= new FuseOptions();
        options.Validate();
        string path = MountInfo.Normalize(mountPoint);

        FuseDevice device = FuseDevice.Open(options.Log);
        try
        {
            FuseMount.Mount(path, device.Fd, options);
        }
        catch
        {
            device.Dispose();
            throw;
        }

        var session = new FuseSession(path, device, fileSystem, options) { _mounted = true };
        try
        {
            session.StartReaders();
            await session._dispatcher.Initialized.WaitAsync(DefaultInitTimeout, cancellationToken);
            session.TuneReadAhead();
            return session;
        }
        catch
        {
            await session.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Serves an already mounted FUSE connection through <paramref name="fd"/>, a /dev/fuse
    /// descriptor this session takes ownership of: one handed over by a previous server process
    /// (with <paramref name="alreadyInitialized"/>, since the kernel sends INIT only once; the
    /// filesystem must then recognise the node ids and handles it gave out before), or one that a
    /// helper mounted and passed in before INIT. <paramref name="options"/> must match the ones the
    /// mount was made and negotiated with.
    /// </summary>
    public static FuseSession FromExistingFd(int fd, string mountPoint, IFuseFileSystem fileSystem, FuseOptions? options = null, bool alreadyInitialized = false)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        options ??= new FuseOptions();
        options.Validate();
        var session = new FuseSession(MountInfo.Normalize(mountPoint), new FuseDevice(fd, options.Log), fileSystem, options)
        {
            _mounted = true,
        };
        if (alreadyInitialized)
        {
            session._dispatcher.AdoptInitializedConnection();
        }
        session.StartReaders();
        if (!alreadyInitialized)
        {
            _ = session.TuneReadAheadAfterInitAsync();
        }
        return session;
    }

    /// <summary>Unmounts, waits for the readers to stop, closes the descriptors. Safe to call twice.</summary>
    public async Task StopAsync()
    {
        await _stopLock.WaitAsync();
        try
        {
            if (_stopped)
            {
                return;
            }
            _stopped = true;

            if (_mounted)
            {
                _mounted = false;
                try
                {
                    FuseMount.Unmount(MountPoint);
                }
                catch (FuseNativeException e)
                {
                    _options.Log?.Invoke($"unmount of {MountPoint} failed: {e.Message}");
                }
            }

            if (!await WaitForReadersAsync(ReaderExitTimeout))
            {
                // A detached mount that is still in use keeps the connection, and the readers, alive.
                // Aborting the connection ends both; without fusectl the readers are left behind.
                MountInfoEntry? entry = _mountEntry;
                if (entry is not null && FuseMount.TryAbortConnection(entry.DeviceMinor))
                {
                    await WaitForReadersAsync(ReaderExitTimeout);
                }
                if (!_readersDone.Task.IsCompleted)
                {
                    _options.Log?.Invoke($"FUSE readers for {MountPoint} did not stop; leaving them behind");
                }
            }

            _dispatcher.SessionEnded();
            foreach (FuseDevice device in _readerDevices)
            {
                device.Dispose();
            }
            _device.Dispose();
        }
        finally
        {
            _stopLock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (_readersDone.Task.IsCompleted)
        {
            _dispatcher.Dispose();
        }
    }

    private async Task<bool> WaitForReadersAsync(TimeSpan timeout)
    {
        try
        {
            await _readersDone.Task.WaitAsync(timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private void StartReaders()
    {
        try
        {
            _mountEntry = MountInfo.Find(MountPoint);
        }
        catch (IOException)
        {
            _mountEntry = null;
        }

        _readerDevices.Add(_device);
        for (int i = 1; i < _options.ReaderThreads; i++)
        {
            try
            {
                _readerDevices.Add(_device.Clone());
            }
            catch (FuseNativeException e)
            {
                // Without clones the readers share one descriptor: slower, still correct.
                _options.Log?.Invoke($"cannot clone the FUSE device ({e.Message}); readers share one descriptor");
                break;
            }
        }

        _runningReaders = _options.ReaderThreads;
        for (int i = 0; i < _options.ReaderThreads; i++)
        {
            FuseDevice device = _readerDevices[Math.Min(i, _readerDevices.Count - 1)];
            var thread = new Thread(() => RunReader(device))
            {
                IsBackground = true,
                Name = $"fuse-reader-{i}",
            };
            thread.Start();
        }
    }

    private async Task TuneReadAheadAfterInitAsync()
    {
        try
        {
#pragma warning disable VSTHRD003 // our own dispatcher's INIT signal
            await _dispatcher.Initialized;
#pragma warning restore VSTHRD003
            TuneReadAhead();
        }
        catch (Exception e)
        {
            _options.Log?.Invoke($"INIT for {MountPoint} failed: {e.Message}");
        }
    }

    private void TuneReadAhead()
    {
        if (_options.ReadAheadKilobytes <= 0)
        {
            return;
        }
        _mountEntry ??= MountInfo.Find(MountPoint);
        if (_mountEntry is null || !FuseMount.TrySetReadAhead(_mountEntry, _options.ReadAheadKilobytes))
        {
            _options.Log?.Invoke($"could not set read_ahead_kb for {MountPoint}");
        }
    }

    private void RunReader(FuseDevice device)
    {
        bool added = false;
        try
        {
            device.DangerousAddRef(ref added);
            byte[] request = GC.AllocateUninitializedArray<byte>(_dispatcher.RequestBufferSize, pinned: true);
            byte[] reply = GC.AllocateUninitializedArray<byte>(_dispatcher.ReplyBufferSize, pinned: true);
            while (true)
            {
                int n = device.ReadRequest(request);
                if (n >= 0)
                {
                    _dispatcher.Dispatch(request.AsSpan(0, n), reply, device);
                    continue;
                }

                int errno = -n;
                if (errno is Native.EINTR or Native.EAGAIN or Native.ENOENT)
                {
                    // ENOENT: the request we were handed was interrupted before we read it.
                    continue;
                }
                if (errno != Native.ENODEV)
                {
                    _options.Log?.Invoke($"reading /dev/fuse failed: {Native.StrError(errno)}; reader stops");
                }
                break; // ENODEV: the connection is gone (unmounted or aborted)
            }
        }
        catch (Exception e)
        {
            _options.Log?.Invoke($"FUSE reader crashed: {e}");
        }
        finally
        {
            if (added)
            {
                device.DangerousRelease();
            }
            if (Interlocked.Decrement(ref _runningReaders) == 0)
            {
                if (!Volatile.Read(ref _stopped))
                {
                    // Every reader died while mounted. Closing the descriptors ends the connection,
                    // so users get ENOTCONN (and CleanupStale can repair the mount) instead of hanging.
                    _options.Log?.Invoke($"all FUSE readers for {MountPoint} stopped; closing the connection");
                    _dispatcher.SessionEnded();
                    foreach (FuseDevice readerDevice in _readerDevices)
                    {
                        readerDevice.Dispose();
                    }
                }
                _readersDone.TrySetResult();
            }
        }
    }
}
