using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CsiCache.Fuse.Passthrough;
using CsiCache.Fuse.Protocol;

namespace CsiCache.Fuse;

/// <summary>
/// Turns FUSE request bytes into <see cref="IFuseFileSystem"/> calls and their results into reply
/// bytes. It owns no descriptor, so tests drive it with byte arrays (go-fuse's ProtocolServer).
/// </summary>
/// <remarks>
/// One opcode table says, per request, which handler runs, how long its fixed input must be, and
/// whether the kernel expects a reply (FORGET, BATCH_FORGET and INTERRUPT get none; every other
/// request gets exactly one). Unknown opcodes are answered ENOSYS, write-type requests EROFS, and an
/// exception escaping a handler EIO. Replies other than READ are built in the caller's buffer and
/// sent before <see cref="Dispatch"/> returns; a READ gets a pooled buffer so that a read still
/// waiting on its origin can be answered later from another thread.
/// </remarks>
public sealed class FuseDispatcher : IDisposable
{
    /// <summary>The oldest protocol we speak: 7.19 has every request and struct we use bar the optional flags.</summary>
    internal const uint MinimumKernelMinor = 19;

    private const int Deferred = int.MinValue;
    private const int SymlinkMax = 4096;

    /// <summary>Longs per request counter: one 64-byte cache line each, so readers counting different opcodes do not contend.</summary>
    private const int CounterStride = 8;

    private static readonly int OutHeaderSize = Unsafe.SizeOf<FuseOutHeader>();
    private static readonly int InHeaderSize = Unsafe.SizeOf<FuseInHeader>();
    private static readonly OpcodeEntry[] Table = BuildTable();

    private readonly IFuseFileSystem _fs;
    private readonly FuseOptions _options;
    private readonly ReadBufferPool _readBuffers;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource<FuseConnection> _initialized = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long[] _requestCounts = new long[Table.Length * CounterStride];
    private volatile FuseConnection? _connection;
    private int _destroyed;

    public FuseDispatcher(IFuseFileSystem fileSystem, FuseOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        _fs = fileSystem;
        _options = options ?? new FuseOptions();
        _options.Validate();
        _readBuffers = new ReadBufferPool(OutHeaderSize + _options.MaxRead, _options.MaxPendingReads);
    }

    private delegate int Handler(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink);

    /// <summary>
    /// Size for a buffer that receives requests from the device. The kernel refuses a read(2) into
    /// anything smaller than header + write_in + max_write (and 8 KiB).
    /// </summary>
    public int RequestBufferSize => Math.Max(FuseKernel.MinReadBuffer, InHeaderSize + 40 + _options.MaxWrite);

    /// <summary>
    /// Size for the reply buffer passed to <see cref="Dispatch"/>: the largest non-READ reply, a
    /// READDIR(PLUS) page run, which the kernel asks for in chunks of at most one page per request
    /// (we allow for 64 KiB in case that grows).
    /// </summary>
    public int ReplyBufferSize => OutHeaderSize + (64 << 10);

    /// <summary>The negotiated connection once INIT is answered; null before.</summary>
    public FuseConnection? Connection => _connection;

    /// <summary>Completes when INIT has been answered successfully.</summary>
#pragma warning disable VSTHRD003 // a completion signal for callers, not work started elsewhere
    public Task<FuseConnection> Initialized => _initialized.Task;
#pragma warning restore VSTHRD003

    /// <summary>
    /// Requests of <paramref name="opcode"/> received so far, whatever their outcome (answered by the
    /// filesystem, by the opcode table, or refused). One interlocked add per request; for tests and
    /// diagnostics, e.g. to see that the kernel stopped sending OPEN after zero-message opens.
    /// </summary>
    public long RequestCount(FuseOpcode opcode) =>
        (uint)opcode < (uint)Table.Length ? Interlocked.Read(ref _requestCounts[(int)opcode * CounterStride]) : 0;

    /// <summary>Registers backing files for passthrough; set by the session, null in pure protocol tests.</summary>
    internal IBackingDevice? BackingDevice { get; set; }

    /// <summary>
    /// Handles one request from <paramref name="request"/> (exactly the bytes one device read
    /// returned). Any reply is built in <paramref name="replyBuffer"/> (at least
    /// <see cref="ReplyBufferSize"/> bytes) or a pooled READ buffer and handed to
    /// <paramref name="sink"/>, possibly after this returns (READ).
    /// </summary>
    public void Dispatch(ReadOnlySpan<byte> request, Span<byte> replyBuffer, IFuseReplySink sink)
    {
        if (request.Length < InHeaderSize)
        {
            // Without a whole header there is no unique to answer to; the kernel never does this.
            Log($"dropped a {request.Length}-byte request: shorter than fuse_in_header");
            return;
        }

        FuseInHeader header = MemoryMarshal.Read<FuseInHeader>(request);
        int length = (int)Math.Min(header.Len, (uint)request.Length);
        ReadOnlySpan<byte> body = request[InHeaderSize..Math.Max(InHeaderSize, length)];
        OpcodeEntry entry = default;
        if (header.Opcode < (uint)Table.Length)
        {
            entry = Table[header.Opcode];
            Interlocked.Increment(ref _requestCounts[(int)header.Opcode * CounterStride]);
        }
        Span<byte> replyBody = replyBuffer[OutHeaderSize..];

        int result;
        if (entry.Handler is null)
        {
            result = -Errno.ENOSYS.Value;
        }
        else if (body.Length < entry.MinBodySize)
        {
            Log($"{(FuseOpcode)header.Opcode}: body of {body.Length} bytes, expected at least {entry.MinBodySize}");
            result = -Errno.EINVAL.Value;
        }
        else if (_connection is null && header.Opcode != (uint)FuseOpcode.Init && !entry.NoReply)
        {
            // Only INIT may come first; anything else means a confused peer.
            result = -Errno.EIO.Value;
        }
        else
        {
            try
            {
                result = entry.Handler(this, in header, body, replyBody, sink);
            }
            catch (Exception e) when (!entry.NoReply)
            {
                Log($"{(FuseOpcode)header.Opcode} on node {header.Nodeid} failed: {e}");
                result = -Errno.EIO.Value;
            }
            catch (Exception e)
            {
                Log($"{(FuseOpcode)header.Opcode} on node {header.Nodeid} failed (no reply expected): {e}");
                return;
            }
        }

        if (entry.NoReply || result == Deferred)
        {
            return;
        }

        int bodyLength = Math.Max(result, 0);
        WriteHeader(replyBuffer, header.Unique, result < 0 ? result : 0, bodyLength);
        sink.Send(replyBuffer[..(OutHeaderSize + bodyLength)]);
    }

    /// <summary>
    /// For a session taking over a device whose INIT an earlier server already answered: assume
    /// that server negotiated what these options ask for, and tell the filesystem so.
    /// </summary>
    internal void AdoptInitializedConnection()
    {
        bool passthrough = _options.EnablePassthrough && BackingDevice is not null;
        // What the kernel offered is not known here, so zero-message opens are not assumed: answering
        // OPEN normally is right either way (if the earlier server declined OPEN, the kernel no longer
        // sends it, and reads arrive with handle 0 whatever this connection says).
        var connection = new FuseConnection(FuseKernel.KernelMinorVersion, _options.MaxRead, passthrough, BackingDevice, noOpenSupported: false, noOpendirSupported: false);
        _fs.Init(connection);
        _connection = connection;
        _initialized.TrySetResult(connection);
    }

    /// <summary>Stops pending reads (their token fires) and calls <see cref="IFuseFileSystem.Destroy"/> once.</summary>
    internal void SessionEnded()
    {
        _stopping.Cancel();
        DestroyOnce();
    }

    /// <summary>
    /// Cancels pending reads. The token source is not disposed: a read that completes later still
    /// checks it, and a CancellationTokenSource without timers holds nothing the GC cannot free.
    /// </summary>
    public void Dispose()
    {
        _stopping.Cancel();
    }

    private static void WriteHeader(Span<byte> reply, ulong unique, int error, int bodyLength)
    {
        var outHeader = new FuseOutHeader { Len = (uint)(OutHeaderSize + bodyLength), Error = error, Unique = unique };
        MemoryMarshal.Write(reply, in outHeader);
    }

    private static int Reply<T>(Span<byte> reply, in T value)
        where T : unmanaged
    {
        MemoryMarshal.Write(reply, in value);
        return Unsafe.SizeOf<T>();
    }

    private static int ErrorOr(Errno error, int bodyLength) => error.IsOk ? bodyLength : -error.Value;

    /// <summary>A request's name argument: the bytes up to its NUL.</summary>
    private static ReadOnlySpan<byte> NameArgument(ReadOnlySpan<byte> body)
    {
        int end = body.IndexOf((byte)0);
        return end < 0 ? body : body[..end];
    }

    private void Log(string message) => _options.Log?.Invoke(message);

    /// <summary>
    /// The kernel rejects a mode without a valid file type or a size past 2^63 with a silent EIO,
    /// and after GETATTR marks the inode bad for good; catch it here where it can be logged.
    /// </summary>
    private bool AttributesValid(in FuseAttributes attributes, string operation, ulong nodeId)
    {
        uint type = attributes.Mode & FuseFileType.Mask;
        bool validType = type is FuseFileType.Regular or FuseFileType.Directory or FuseFileType.Symlink
            or FuseFileType.CharDevice or FuseFileType.BlockDevice or FuseFileType.Fifo or FuseFileType.Socket;
        if (validType && attributes.Size <= long.MaxValue)
        {
            return true;
        }
        Log($"{operation} on node {nodeId}: invalid attributes from the filesystem (mode 0x{attributes.Mode:x}, size {attributes.Size})");
        return false;
    }

    private void DestroyOnce()
    {
        if (Interlocked.Exchange(ref _destroyed, 1) == 0 && _connection is not null)
        {
            try
            {
                _fs.Destroy();
            }
            catch (Exception e)
            {
                Log($"Destroy failed: {e}");
            }
        }
    }

    // ---- handlers -----------------------------------------------------------------------------

    private static int Init(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        // Before 7.36 fuse_init_in is 16 bytes; read what came and leave the rest zero.
        FuseInitIn initIn = default;
        body[..Math.Min(body.Length, Unsafe.SizeOf<FuseInitIn>())].CopyTo(MemoryMarshal.AsBytes(new Span<FuseInitIn>(ref initIn)));

        var initOut = new FuseInitOut { Major = FuseKernel.KernelVersion, Minor = FuseKernel.KernelMinorVersion };
        if (initIn.Major > FuseKernel.KernelVersion)
        {
            // A newer major: answer with ours and the kernel retries INIT in our major.
            return Reply(reply, in initOut);
        }
        if (initIn.Major < FuseKernel.KernelVersion || initIn.Minor < MinimumKernelMinor)
        {
            self.Log($"INIT: kernel protocol {initIn.Major}.{initIn.Minor} is older than 7.{MinimumKernelMinor}");
            return -Errno.EPROTO.Value;
        }

        FuseOptions options = self._options;
        uint minor = Math.Min(initIn.Minor, FuseKernel.KernelMinorVersion);
        FuseInitFlags offered = (FuseInitFlags)initIn.Flags;
        if ((offered & FuseInitFlags.InitExt) != 0)
        {
            offered |= (FuseInitFlags)((ulong)initIn.Flags2 << 32);
        }

        FuseInitFlags wanted =
            FuseInitFlags.AsyncRead |         // readahead and parallel reads of one file
            FuseInitFlags.AsyncDio |          // O_DIRECT reads split into parallel requests
            FuseInitFlags.ParallelDirops |    // lookups and readdirs of one directory in parallel
            FuseInitFlags.DoReaddirplus |     // attributes with the listing: ls -l, os.walk
            FuseInitFlags.ReaddirplusAuto |   // ...but plain READDIR when nobody stats the entries
            FuseInitFlags.CacheSymlinks |     // immutable targets: keep them in the page cache
            FuseInitFlags.MaxPages |          // max_pages below, for 1 MiB reads
            FuseInitFlags.DirectIoAllowMmap | // mmap of a file opened with FOPEN_DIRECT_IO (6.6)
            FuseInitFlags.InitExt;            // flags2 (passthrough lives there)
        if (options.EnablePassthrough && self.BackingDevice is not null)
        {
            wanted |= FuseInitFlags.Passthrough;
        }
        FuseInitFlags granted = wanted & offered;
        bool passthrough = (granted & FuseInitFlags.Passthrough) != 0;
        // A capability of the kernel, not a request: nothing to grant, only to remember, so the
        // filesystem knows whether ENOSYS from OPEN means "zero-message opens" or a failed open.
        bool noOpen = (offered & FuseInitFlags.NoOpenSupport) != 0;
        // Likewise for directories: whether ENOSYS from OPENDIR means "no opendir state" (7.29).
        bool noOpendir = (offered & FuseInitFlags.NoOpendirSupport) != 0;

        int maxPages = options.MaxRead / FuseKernel.PageSize;
        initOut.Minor = minor;
        initOut.MaxReadahead = initIn.MaxReadahead;
        initOut.Flags = (uint)granted;
        initOut.Flags2 = (uint)((ulong)granted >> 32);
        initOut.MaxBackground = options.MaxBackground;
        initOut.CongestionThreshold = options.CongestionThreshold;
        initOut.MaxWrite = (uint)options.MaxWrite;
        initOut.TimeGran = 1;
        initOut.MaxPages = (ushort)maxPages;
        // The FUSE mount then counts as one stacking level over its backing files, which lets
        // overlayfs still sit on top (the kernel allows two).
        initOut.MaxStackDepth = passthrough ? 1u : 0u;

        int maxRead = (granted & FuseInitFlags.MaxPages) != 0 ? options.MaxRead : Math.Min(options.MaxRead, 32 * FuseKernel.PageSize);
        bool directIoMmap = (granted & FuseInitFlags.DirectIoAllowMmap) != 0;
        var connection = new FuseConnection(minor, maxRead, passthrough, self.BackingDevice, noOpen, noOpendir, directIoMmap);
        try
        {
            self._fs.Init(connection);
        }
        catch (Exception e)
        {
            // INIT is answered EIO (the kernel then fails every access); whoever waits for INIT learns why.
            self._initialized.TrySetException(e);
            throw;
        }
        self._connection = connection;
        self._initialized.TrySetResult(connection);

        MemoryMarshal.Write(reply, in initOut);
        // 7.23 grew the reply from 24 bytes (time_gran and after); older kernels reject the longer one.
        return minor < 23 ? 24 : Unsafe.SizeOf<FuseInitOut>();
    }

    private static int Destroy(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        self.DestroyOnce();
        return 0;
    }

    private static int Lookup(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        Errno error = self._fs.Lookup(header.Nodeid, NameArgument(body), out FuseEntry entry);
        if (error.IsOk)
        {
            if (entry.NodeId == 0)
            {
                // Node id 0 would read as a negative entry, and the kernel would leak nothing but
                // answer ENOENT; a filesystem returning it means a bug, so say so.
                throw new InvalidOperationException("Lookup succeeded with node id 0");
            }
            if (!self.AttributesValid(entry.Attributes, "LOOKUP", header.Nodeid))
            {
                return -Errno.EIO.Value;
            }
            return Reply(reply, FuseConversions.ToEntryOut(entry));
        }
        if (error == Errno.ENOENT && entry.EntryTimeout > TimeSpan.Zero)
        {
            // A negative dentry: node id 0 with a timeout makes the kernel remember the miss.
            var negative = new FuseEntry { EntryTimeout = entry.EntryTimeout };
            return Reply(reply, FuseConversions.ToEntryOut(negative));
        }
        return -error.Value;
    }

    private static int Forget(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        FuseForgetIn forget = MemoryMarshal.Read<FuseForgetIn>(body);
        self._fs.Forget(header.Nodeid, forget.Nlookup);
        return 0;
    }

    private static int BatchForget(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        FuseBatchForgetIn batch = MemoryMarshal.Read<FuseBatchForgetIn>(body);
        ReadOnlySpan<FuseForgetOne> items = MemoryMarshal.Cast<byte, FuseForgetOne>(body[Unsafe.SizeOf<FuseBatchForgetIn>()..]);
        int count = (int)Math.Min(batch.Count, (uint)items.Length);
        for (int i = 0; i < count; i++)
        {
            self._fs.Forget(items[i].Nodeid, items[i].Nlookup);
        }
        return 0;
    }

    private static int GetAttr(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        Errno error = self._fs.GetAttr(header.Nodeid, out FuseAttributes attributes, out TimeSpan timeout);
        if (!error.IsOk)
        {
            return -error.Value;
        }
        if (attributes.Ino == 0)
        {
            attributes.Ino = header.Nodeid;
        }
        if (!self.AttributesValid(attributes, "GETATTR", header.Nodeid))
        {
            return -Errno.EIO.Value;
        }
        FuseConversions.SplitTimeout(timeout, out ulong seconds, out uint nanoseconds);
        var attrOut = new FuseAttrOut { AttrValid = seconds, AttrValidNsec = nanoseconds, Attr = FuseConversions.ToAttr(attributes) };
        return Reply(reply, in attrOut);
    }

    private static int ReadLink(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        Span<byte> target = reply[..Math.Min(reply.Length, SymlinkMax)];
        Errno error = self._fs.ReadLink(header.Nodeid, target, out int length);
        if (error.IsOk && (length < 0 || length > target.Length))
        {
            throw new InvalidOperationException($"ReadLink reported {length} bytes for a {target.Length}-byte buffer");
        }
        return ErrorOr(error, length);
    }

    private static int Open(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        FuseOpenIn openIn = MemoryMarshal.Read<FuseOpenIn>(body);
        Errno error = self._fs.Open(header.Nodeid, (int)openIn.Flags, out FuseOpenResult result);
        if (!error.IsOk)
        {
            return -error.Value;
        }
        FuseOpenOptions options = result.Options;
        if ((options & FuseOpenOptions.Passthrough) != 0 && self._connection is not { PassthroughEnabled: true })
        {
            // The kernel would fail the open; serve it through READ instead.
            self.Log($"OPEN node {header.Nodeid}: passthrough asked for but not negotiated; using READ");
            options &= ~FuseOpenOptions.Passthrough;
        }
        var openOut = new FuseOpenOut
        {
            Fh = result.Handle,
            OpenFlags = (uint)options,
            BackingId = (options & FuseOpenOptions.Passthrough) != 0 ? result.BackingId : 0,
        };
        return Reply(reply, in openOut);
    }

    private static int OpenDir(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        FuseOpenIn openIn = MemoryMarshal.Read<FuseOpenIn>(body);
        Errno error = self._fs.OpenDir(header.Nodeid, (int)openIn.Flags, out FuseOpenResult result);
        if (!error.IsOk)
        {
            return -error.Value;
        }
        var openOut = new FuseOpenOut { Fh = result.Handle, OpenFlags = (uint)(result.Options & ~FuseOpenOptions.Passthrough) };
        return Reply(reply, in openOut);
    }

    private static int Read(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        FuseReadIn readIn = MemoryMarshal.Read<FuseReadIn>(body);
        int size = (int)Math.Min(readIn.Size, (uint)self._options.MaxRead);
        if (readIn.Offset > long.MaxValue)
        {
            return -Errno.EINVAL.Value;
        }

        byte[] buffer = self._readBuffers.Rent(self._stopping.Token);
        ValueTask<FuseReadResult> pending;
        try
        {
            pending = self._fs.ReadAsync(header.Nodeid, readIn.Fh, (long)readIn.Offset, buffer.AsMemory(OutHeaderSize, size), self._stopping.Token);
        }
        catch
        {
            self._readBuffers.Return(buffer);
            throw;
        }

        if (pending.IsCompleted)
        {
            // The cache-hit path: answered on this thread, nothing allocated.
            FuseReadResult read = default;
            Exception? failure = null;
            try
            {
#pragma warning disable VSTHRD002, VSTHRD103 // completed already: this only takes its result or exception
                read = pending.Result;
#pragma warning restore VSTHRD002, VSTHRD103
            }
            catch (Exception e)
            {
                failure = e;
            }
            self.CompleteRead(read, failure, buffer, header.Unique, header.Nodeid, size, sink);
        }
        else
        {
            _ = self.CompleteReadLaterAsync(pending, buffer, header.Unique, header.Nodeid, size, sink);
        }
        return Deferred;
    }

    private async Task CompleteReadLaterAsync(ValueTask<FuseReadResult> pending, byte[] buffer, ulong unique, ulong nodeId, int size, IFuseReplySink sink)
    {
        FuseReadResult read = default;
        Exception? failure = null;
        try
        {
            read = await pending;
        }
        catch (Exception e)
        {
            failure = e;
        }
        CompleteRead(read, failure, buffer, unique, nodeId, size, sink);
    }

    /// <summary>Sends a READ's reply from its pooled buffer, then returns the buffer. Never throws.</summary>
    private void CompleteRead(FuseReadResult read, Exception? failure, byte[] buffer, ulong unique, ulong nodeId, int size, IFuseReplySink sink)
    {
        int result;
        if (failure is OperationCanceledException && _stopping.IsCancellationRequested)
        {
            result = -Errno.EINTR.Value;
        }
        else if (failure is not null)
        {
            Log($"READ node {nodeId} failed: {failure}");
            result = -Errno.EIO.Value;
        }
        else if (!read.Error.IsOk)
        {
            result = -read.Error.Value;
        }
        else if (read.BytesRead < 0 || read.BytesRead > size)
        {
            Log($"READ node {nodeId}: filesystem reported {read.BytesRead} bytes for a {size}-byte read");
            result = -Errno.EIO.Value;
        }
        else
        {
            result = read.BytesRead;
        }

        try
        {
            int bodyLength = Math.Max(result, 0);
            WriteHeader(buffer, unique, Math.Min(result, 0), bodyLength);
            sink.Send(buffer.AsSpan(0, OutHeaderSize + bodyLength));
        }
        catch (Exception e)
        {
            Log($"READ node {nodeId}: sending the reply failed: {e}");
        }
        finally
        {
            _readBuffers.Return(buffer);
        }
    }

    private static int Release(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        FuseReleaseIn releaseIn = MemoryMarshal.Read<FuseReleaseIn>(body);
        self._fs.Release(header.Nodeid, releaseIn.Fh);
        return 0;
    }

    private static int ReleaseDir(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        FuseReleaseIn releaseIn = MemoryMarshal.Read<FuseReleaseIn>(body);
        self._fs.ReleaseDir(header.Nodeid, releaseIn.Fh);
        return 0;
    }

    private static int Flush(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        FuseFlushIn flushIn = MemoryMarshal.Read<FuseFlushIn>(body);
        return ErrorOr(self._fs.Flush(header.Nodeid, flushIn.Fh), 0);
    }

    private static int ReadDir(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink) =>
        ReadDirectory(self, header, body, reply, plus: false);

    private static int ReadDirPlus(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink) =>
        ReadDirectory(self, header, body, reply, plus: true);

    private static int ReadDirectory(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, bool plus)
    {
        FuseReadIn readIn = MemoryMarshal.Read<FuseReadIn>(body);
        var writer = new DirectoryWriter(reply[..(int)Math.Min(readIn.Size, (uint)reply.Length)], plus);
        Errno error = self._fs.ReadDir(header.Nodeid, readIn.Fh, readIn.Offset, ref writer);
        // Entries already packed must reach the kernel: in READDIRPLUS they hold lookup references.
        return writer.Count > 0 ? writer.Length : ErrorOr(error, 0);
    }

    private static int StatFs(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        Errno error = self._fs.StatFs(header.Nodeid, out FuseStatFs stats);
        if (!error.IsOk)
        {
            return -error.Value;
        }
        var statfsOut = new FuseStatfsOut
        {
            St = new FuseKstatfs
            {
                Blocks = stats.Blocks,
                Bfree = stats.BlocksFree,
                Bavail = stats.BlocksAvailable,
                Files = stats.Files,
                Ffree = stats.FilesFree,
                Bsize = stats.BlockSize,
                Namelen = stats.NameLength,
                Frsize = stats.FragmentSize,
            },
        };
        return Reply(reply, in statfsOut);
    }

    private static int Access(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink)
    {
        FuseAccessIn accessIn = MemoryMarshal.Read<FuseAccessIn>(body);
        return ErrorOr(self._fs.Access(header.Nodeid, (int)accessIn.Mask), 0);
    }

    private static int NoReply(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink) => 0;

    private static int Succeed(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink) => 0;

    private static int ReadOnlyFileSystem(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink) =>
        -Errno.EROFS.Value;

    private static int NotImplemented(FuseDispatcher self, in FuseInHeader header, ReadOnlySpan<byte> body, Span<byte> reply, IFuseReplySink sink) =>
        -Errno.ENOSYS.Value;

    private readonly record struct OpcodeEntry(Handler? Handler, int MinBodySize, bool NoReply);

    private static OpcodeEntry[] BuildTable()
    {
        var table = new OpcodeEntry[(int)FuseOpcode.CopyFileRange64 + 1];
        void Set(FuseOpcode opcode, Handler handler, int minBodySize = 0, bool noReply = false) =>
            table[(int)opcode] = new OpcodeEntry(handler, minBodySize, noReply);

        int readIn = Unsafe.SizeOf<FuseReadIn>();
        Set(FuseOpcode.Init, Init, 8);
        Set(FuseOpcode.Destroy, Destroy);
        Set(FuseOpcode.Lookup, Lookup);
        Set(FuseOpcode.Forget, Forget, Unsafe.SizeOf<FuseForgetIn>(), noReply: true);
        Set(FuseOpcode.BatchForget, BatchForget, Unsafe.SizeOf<FuseBatchForgetIn>(), noReply: true);
        Set(FuseOpcode.Interrupt, NoReply, noReply: true); // the original request is still answered
        Set(FuseOpcode.NotifyReply, NoReply, noReply: true); // we never send NOTIFY_RETRIEVE
        Set(FuseOpcode.GetAttr, GetAttr);
        Set(FuseOpcode.ReadLink, ReadLink);
        Set(FuseOpcode.Open, Open, Unsafe.SizeOf<FuseOpenIn>());
        Set(FuseOpcode.Read, Read, readIn);
        Set(FuseOpcode.Release, Release, Unsafe.SizeOf<FuseReleaseIn>());
        Set(FuseOpcode.Flush, Flush, Unsafe.SizeOf<FuseFlushIn>());
        Set(FuseOpcode.OpenDir, OpenDir, Unsafe.SizeOf<FuseOpenIn>());
        Set(FuseOpcode.ReadDir, ReadDir, readIn);
        Set(FuseOpcode.ReadDirPlus, ReadDirPlus, readIn);
        Set(FuseOpcode.ReleaseDir, ReleaseDir, Unsafe.SizeOf<FuseReleaseIn>());
        Set(FuseOpcode.StatFs, StatFs);
        Set(FuseOpcode.Access, Access, Unsafe.SizeOf<FuseAccessIn>());

        // Nothing to make durable in a read-only filesystem.
        Set(FuseOpcode.FSync, Succeed);
        Set(FuseOpcode.FSyncDir, Succeed);

        // ENOSYS is remembered by the kernel, which then stops asking: xattrs read as "not
        // supported" without a round trip per getxattr (ls -l asks for ACLs on every entry);
        // locks, lseek and statx fall back to the kernel's own handling.
        foreach (FuseOpcode opcode in (ReadOnlySpan<FuseOpcode>)[
            FuseOpcode.GetXAttr, FuseOpcode.ListXAttr, FuseOpcode.GetLk, FuseOpcode.SetLk, FuseOpcode.SetLkW,
            FuseOpcode.BMap, FuseOpcode.IoCtl, FuseOpcode.Poll, FuseOpcode.LSeek, FuseOpcode.Statx,
            FuseOpcode.SyncFs, FuseOpcode.SetupMapping, FuseOpcode.RemoveMapping])
        {
            Set(opcode, NotImplemented);
        }

        foreach (FuseOpcode opcode in (ReadOnlySpan<FuseOpcode>)[
            FuseOpcode.SetAttr, FuseOpcode.Symlink, FuseOpcode.MkNod, FuseOpcode.MkDir, FuseOpcode.Unlink,
            FuseOpcode.RmDir, FuseOpcode.Rename, FuseOpcode.Link, FuseOpcode.Write, FuseOpcode.SetXAttr,
            FuseOpcode.RemoveXAttr, FuseOpcode.Create, FuseOpcode.FAllocate, FuseOpcode.Rename2,
            FuseOpcode.CopyFileRange, FuseOpcode.TmpFile, FuseOpcode.CopyFileRange64])
        {
            Set(opcode, ReadOnlyFileSystem);
        }
        return table;
    }
}
