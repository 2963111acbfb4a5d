using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using CsiCache.Fuse;
using CsiCache.Fuse.Passthrough;

namespace CsiCache.Fuse.Tests;

/// <summary>
/// Builds request bytes by hand, at the offsets fuse_kernel.h gives, independently of the structs
/// under test, and reads replies back the same way.
/// </summary>
internal static class Wire
{
    public const int InHeaderSize = 40;
    public const int OutHeaderSize = 16;

    public static byte[] Request(uint opcode, ulong unique, ulong nodeId, ReadOnlySpan<byte> body)
    {
        var bytes = new byte[InHeaderSize + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0), (uint)bytes.Length); // len
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), opcode);              // opcode
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), unique);              // unique
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(16), nodeId);             // nodeid
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(24), 1000);               // uid
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(28), 1000);               // gid
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(32), 4242);               // pid
        body.CopyTo(bytes.AsSpan(InHeaderSize));
        return bytes;
    }

    /// <summary>fuse_init_in: major, minor, max_readahead, flags, flags2, unused[11] (64 bytes).</summary>
    public static byte[] InitBody(uint major, uint minor, uint flags, uint flags2, uint maxReadahead = 128 * 1024, int size = 64)
    {
        var body = new byte[size];
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(0), major);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(4), minor);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(8), maxReadahead);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(12), flags);
        if (size >= 20)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(16), flags2);
        }
        return body;
    }

    /// <summary>fuse_read_in: fh, offset, size, read_flags, lock_owner, flags, padding (40 bytes).</summary>
    public static byte[] ReadBody(ulong fh, ulong offset, uint size)
    {
        var body = new byte[40];
        BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(0), fh);
        BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(8), offset);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(16), size);
        return body;
    }

    public static byte[] Name(string name) => Encoding.UTF8.GetBytes(name + "\0");

    public static uint ReplyLength(byte[] reply) => BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(0));

    public static int ReplyError(byte[] reply) => BinaryPrimitives.ReadInt32LittleEndian(reply.AsSpan(4));

    public static ulong ReplyUnique(byte[] reply) => BinaryPrimitives.ReadUInt64LittleEndian(reply.AsSpan(8));

    public static uint U32(byte[] reply, int bodyOffset) => BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(OutHeaderSize + bodyOffset));

    public static ushort U16(byte[] reply, int bodyOffset) => BinaryPrimitives.ReadUInt16LittleEndian(reply.AsSpan(OutHeaderSize + bodyOffset));

    public static ulong U64(byte[] reply, int bodyOffset) => BinaryPrimitives.ReadUInt64LittleEndian(reply.AsSpan(OutHeaderSize + bodyOffset));
}

/// <summary>Collects replies as the device would receive them.</summary>
internal sealed class ReplyCollector : IFuseReplySink
{
    private readonly ConcurrentQueue<byte[]> _replies = new();
    private readonly SemaphoreSlim _arrived = new(0);

    public int Count => _replies.Count;

    public void Send(ReadOnlySpan<byte> reply)
    {
        _replies.Enqueue(reply.ToArray());
        _arrived.Release();
    }

    public async Task<byte[]> NextAsync()
    {
        Assert.True(await _arrived.WaitAsync(TimeSpan.FromSeconds(5)), "no reply arrived within 5 s");
        Assert.True(_replies.TryDequeue(out byte[]? reply));
        return reply;
    }

    public byte[] Single()
    {
        Assert.True(_arrived.Wait(0), "expected a reply, got none");
        Assert.True(_replies.TryDequeue(out byte[]? reply));
        Assert.Empty(_replies);
        return reply;
    }
}

/// <summary>A dispatcher with a reply buffer and collector, speaking to a filesystem.</summary>
internal sealed class DispatcherHarness : IDisposable
{
    private readonly byte[] _replyBuffer;
    private ulong _unique = 100;

    public DispatcherHarness(IFuseFileSystem fs, FuseOptions? options = null, IBackingDevice? backing = null)
    {
        Dispatcher = new FuseDispatcher(fs, (options ?? new FuseOptions()) with { Log = Logs.Add }) { BackingDevice = backing };
        _replyBuffer = new byte[Dispatcher.ReplyBufferSize];
    }

    public FuseDispatcher Dispatcher { get; }

    public ReplyCollector Replies { get; } = new();

    public ConcurrentBag<string> Logs { get; } = [];

    public ulong LastUnique => _unique;

    public void Send(byte[] request) => Dispatcher.Dispatch(request, _replyBuffer, Replies);

    public byte[] Call(uint opcode, ulong nodeId, ReadOnlySpan<byte> body)
    {
        Send(Wire.Request(opcode, ++_unique, nodeId, body));
        byte[] reply = Replies.Single();
        Assert.Equal(_unique, Wire.ReplyUnique(reply));
        Assert.Equal((uint)reply.Length, Wire.ReplyLength(reply));
        return reply;
    }

    /// <summary>INIT as kernel 6.18 sends it: 7.45, every flag it knows, INIT_EXT with flags2.</summary>
    public byte[] Init(uint minor = 45, uint flags = 0xFFFFFFFF, uint flags2 = 0x7FF)
    {
        return Call(26, 0, Wire.InitBody(7, minor, flags, flags2));
    }

    public void Dispose() => Dispatcher.Dispose();
}

/// <summary>A records-what-it-is-asked filesystem for dispatcher tests.</summary>
internal sealed class ScriptedFileSystem : IFuseFileSystem
{
    public const ulong HelloNode = 5;
    public const ulong SyncHandle = 1;
    public const ulong PendingHandle = 2;
    public const ulong ThrowingHandle = 3;
    public const ulong StaleHandle = 4;

    public ConcurrentQueue<(ulong Node, ulong Count)> Forgets { get; } = new();

    public TaskCompletionSource<FuseReadResult> PendingRead { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Memory<byte> PendingDestination { get; private set; }

    public TimeSpan NegativeTimeout { get; set; }

    public FuseOpenOptions OpenOptions { get; set; } = FuseOpenOptions.KeepCache;

    /// <summary>What OPEN answers (Ok: a handle with <see cref="OpenOptions"/>).</summary>
    public Errno OpenError { get; set; } = Errno.Ok;

    /// <summary>What FLUSH answers.</summary>
    public Errno FlushError { get; set; } = Errno.Ok;

    /// <summary>What OPENDIR answers (Ok: handle 55 with FOPEN_CACHE_DIR).</summary>
    public Errno OpenDirError { get; set; } = Errno.Ok;

    /// <summary>READDIR/READDIRPLUS calls and those among them with handle 0 (counters: the allocation test lists too).</summary>
    public int ReadDirCalls { get; private set; }

    public int HandleZeroReadDirCalls { get; private set; }

    public FuseConnection? Connection { get; private set; }

    public int DestroyCalls { get; private set; }

    public List<string> DirectoryNames { get; } = [];

    public void Init(FuseConnection connection) => Connection = connection;

    public void Destroy() => DestroyCalls++;

    public Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseEntry entry)
    {
        entry = default;
        if (name.SequenceEqual("boom"u8))
        {
            throw new InvalidOperationException("scripted failure");
        }
        if (parent == 1 && name.SequenceEqual("hello"u8))
        {
            entry = new FuseEntry
            {
                NodeId = HelloNode,
                Generation = 7,
                EntryTimeout = TimeSpan.FromSeconds(60),
                AttrTimeout = TimeSpan.FromMilliseconds(1500),
                Attributes = HelloAttributes,
            };
            return Errno.Ok;
        }
        entry.EntryTimeout = NegativeTimeout;
        return Errno.ENOENT;
    }

    public static FuseAttributes HelloAttributes => new()
    {
        Ino = HelloNode,
        Size = 11,
        Blocks = 1,
        MTime = new FuseTimestamp(1_700_000_000, 123),
        Mode = FuseFileType.Regular | 0x1A4, // 0644
        NLink = 1,
        Uid = 1000,
        Gid = 2000,
    };

    public void Forget(ulong nodeId, ulong lookups) => Forgets.Enqueue((nodeId, lookups));

    public Errno GetAttr(ulong nodeId, out FuseAttributes attributes, out TimeSpan timeout)
    {
        attributes = HelloAttributes;
        timeout = TimeSpan.FromSeconds(3);
        return nodeId == HelloNode ? Errno.Ok : Errno.ENOENT;
    }

    public Errno ReadLink(ulong nodeId, Span<byte> target, out int length)
    {
        length = 0;
        "target/of/link"u8.CopyTo(target);
        length = 14;
        return Errno.Ok;
    }

    public Errno Open(ulong nodeId, int flags, out FuseOpenResult result)
    {
        result = default;
        if (!OpenError.IsOk)
        {
            return OpenError;
        }
        result = new FuseOpenResult { Handle = 77, Options = OpenOptions, BackingId = 9 };
        return Errno.Ok;
    }

    public Errno Flush(ulong nodeId, ulong handle) => FlushError;

    public ValueTask<FuseReadResult> ReadAsync(ulong nodeId, ulong handle, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        switch (handle)
        {
            case SyncHandle:
                int n = 0;
                for (; n < destination.Length && offset + n < 11; n++)
                {
                    destination.Span[n] = "hello world"u8[(int)offset + n];
                }
                return ValueTask.FromResult(FuseReadResult.Bytes(n));
            case PendingHandle:
                PendingDestination = destination;
                return new ValueTask<FuseReadResult>(PendingRead.Task);
            case ThrowingHandle:
                return ValueTask.FromException<FuseReadResult>(new IOException("origin down"));
            default:
                return ValueTask.FromResult<FuseReadResult>(Errno.ESTALE);
        }
    }

    public void Release(ulong nodeId, ulong handle)
    {
    }

    public Errno OpenDir(ulong nodeId, int flags, out FuseOpenResult result)
    {
        result = new FuseOpenResult { Handle = 55, Options = FuseOpenOptions.CacheDir | FuseOpenOptions.Passthrough };
        return OpenDirError;
    }

    public Errno ReadDir(ulong nodeId, ulong handle, ulong offset, ref DirectoryWriter writer)
    {
        ReadDirCalls++;
        HandleZeroReadDirCalls += handle == 0 ? 1 : 0;
        Span<byte> name = stackalloc byte[300];
        for (int i = (int)offset; i < DirectoryNames.Count; i++)
        {
            int length = System.Text.Encoding.UTF8.GetBytes(DirectoryNames[i], name);
            var entry = new FuseEntry
            {
                NodeId = (ulong)(100 + i),
                Attributes = new FuseAttributes { Ino = (ulong)(100 + i), Mode = FuseFileType.Regular | 0x1A4, Size = (ulong)i },
            };
            if (!writer.TryAdd(name[..length], entry, (ulong)(i + 1)))
            {
                break;
            }
        }
        return Errno.Ok;
    }

    public void ReleaseDir(ulong nodeId, ulong handle)
    {
    }
}

/// <summary>Pretends to be the device for passthrough registration.</summary>
internal sealed class FakeBackingDevice : IBackingDevice
{
    public List<int> Opened { get; } = [];

    public List<int> Closed { get; } = [];

    public int OpenBacking(int fd)
    {
        Opened.Add(fd);
        return Opened.Count;
    }

    public void CloseBacking(int id) => Closed.Add(id);
}
