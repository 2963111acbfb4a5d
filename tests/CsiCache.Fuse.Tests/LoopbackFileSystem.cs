using System.Collections.Concurrent;
using System.Text;
using CsiCache.Fuse;
using CsiCache.Fuse.Passthrough;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Fuse.Tests;

/// <summary>
/// A read-only <see cref="IFuseFileSystem"/> over a local directory, for the protocol's own tests.
/// Node ids are handed out on first lookup and dropped when the kernel forgets them. Reads of odd
/// 4 KiB pages complete asynchronously (after a thread hop) and even ones synchronously, so every
/// large read exercises both reply paths of the dispatcher.
/// </summary>
internal sealed class LoopbackFileSystem : IFuseFileSystem
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan NegativeTimeout = TimeSpan.FromSeconds(1);

    private readonly string _root;
    private readonly object _nodesLock = new();
    private readonly Dictionary<ulong, Node> _nodes = [];
    private readonly Dictionary<string, Node> _byPath = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<ulong, SafeFileHandle> _files = new();
    private readonly ConcurrentDictionary<ulong, string[]> _directories = new();
    private FuseConnection? _connection;
    private ulong _nextNodeId = 1;
    private long _nextHandle;
    private long _readCalls;
    private long _passthroughOpens;
    private long _asyncReads;

    private long _handleZeroReads;

    public LoopbackFileSystem(string root, bool usePassthrough = false, bool declineOpens = false, bool declineOpenDirs = false)
    {
        DeclineOpenDirs = declineOpenDirs;
        _root = Path.GetFullPath(root);
        UsePassthrough = usePassthrough;
        DeclineOpens = declineOpens;
        Node rootNode = new(FuseKernelRootId, _root) { Lookups = 1 };
        _nodes[rootNode.Id] = rootNode;
        _byPath[_root] = rootNode;
        _nextNodeId = 2;
    }

    private const ulong FuseKernelRootId = 1;

    public bool UsePassthrough { get; }

    /// <summary>Answer OPEN and FLUSH with ENOSYS when the kernel offers zero-message opens; reads then come with handle 0.</summary>
    public bool DeclineOpens { get; }

    /// <summary>Answer OPENDIR with ENOSYS when the kernel offers zero-message opendirs; READDIRs then come with handle 0.</summary>
    public bool DeclineOpenDirs { get; }

    /// <summary>READDIR/READDIRPLUS requests that came with handle 0, served by node id.</summary>
    public long HandleZeroReadDirs => Interlocked.Read(ref _handleZeroReadDirs);

    private long _handleZeroReadDirs;

    /// <summary>READs that came with handle 0 (zero-message opens), served by node id.</summary>
    public long HandleZeroReads => Interlocked.Read(ref _handleZeroReads);

    public long ReadCalls => Interlocked.Read(ref _readCalls);

    public long AsyncReads => Interlocked.Read(ref _asyncReads);

    public long PassthroughOpens => Interlocked.Read(ref _passthroughOpens);

    public int InitCalls { get; private set; }

    public int DestroyCalls { get; private set; }

    /// <summary>Nodes the kernel still holds a reference to, root included.</summary>
    public int LiveNodes
    {
        get
        {
            lock (_nodesLock)
            {
                return _nodes.Count;
            }
        }
    }

    public void Init(FuseConnection connection)
    {
        _connection = connection;
        InitCalls++;
    }

    public void Destroy() => DestroyCalls++;

    public Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseEntry entry)
    {
        entry = default;
        string? parentPath = PathOf(parent);
        if (parentPath is null)
        {
            return Errno.ESTALE;
        }
        if (name.Length > 255)
        {
            return Errno.ENAMETOOLONG;
        }
        string path = Path.Combine(parentPath, Encoding.UTF8.GetString(name));
        if (!TryStat(path, out FuseAttributes attributes))
        {
            entry.EntryTimeout = NegativeTimeout;
            return Errno.ENOENT;
        }
        Node node = Reference(path);
        attributes.Ino = node.Id;
        entry = new FuseEntry { NodeId = node.Id, EntryTimeout = Timeout, AttrTimeout = Timeout, Attributes = attributes };
        return Errno.Ok;
    }

    public void Forget(ulong nodeId, ulong lookups)
    {
        lock (_nodesLock)
        {
            if (nodeId == FuseKernelRootId || !_nodes.TryGetValue(nodeId, out Node? node))
            {
                return;
            }
            node.Lookups -= (long)lookups;
            if (node.Lookups <= 0)
            {
                _nodes.Remove(nodeId);
                _byPath.Remove(node.Path);
                node.Backing?.Dispose();
            }
        }
    }

    public Errno GetAttr(ulong nodeId, out FuseAttributes attributes, out TimeSpan timeout)
    {
        timeout = Timeout;
        string? path = PathOf(nodeId);
        if (path is null)
        {
            attributes = default;
            return Errno.ESTALE;
        }
        if (!TryStat(path, out attributes))
        {
            return Errno.ENOENT;
        }
        attributes.Ino = nodeId;
        return Errno.Ok;
    }

    public Errno ReadLink(ulong nodeId, Span<byte> target, out int length)
    {
        length = 0;
        string? path = PathOf(nodeId);
        string? link = path is null ? null : new FileInfo(path).LinkTarget;
        if (link is null)
        {
            return Errno.EINVAL;
        }
        if (Encoding.UTF8.GetByteCount(link) > target.Length)
        {
            return Errno.ENAMETOOLONG;
        }
        length = Encoding.UTF8.GetBytes(link, target);
        return Errno.Ok;
    }

    public Errno Open(ulong nodeId, int flags, out FuseOpenResult result)
    {
        result = default;
        if (DeclineOpens && _connection is { NoOpenSupported: true })
        {
            return Errno.ENOSYS;
        }
        string? path = PathOf(nodeId);
        if (path is null)
        {
            return Errno.ESTALE;
        }
        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        }
        catch (FileNotFoundException)
        {
            return Errno.ENOENT;
        }
        catch (UnauthorizedAccessException)
        {
            return Errno.EACCES;
        }

        ulong handle = (ulong)Interlocked.Increment(ref _nextHandle);
        _files[handle] = file;
        result.Handle = handle;
        result.Options = FuseOpenOptions.KeepCache;

        if (UsePassthrough && _connection is { PassthroughEnabled: true } connection)
        {
            // One backing id per inode: the kernel refuses two for concurrent opens of one inode.
            lock (_nodesLock)
            {
                Node node = _nodes[nodeId];
                if (node.Backing is null && connection.TryOpenBackingFile(file, out BackingId? backing, out _))
                {
                    node.Backing = backing;
                }
                if (node.Backing is not null)
                {
                    result.Options = FuseOpenOptions.Passthrough;
                    result.BackingId = node.Backing.Id;
                    Interlocked.Increment(ref _passthroughOpens);
                }
            }
        }
        return Errno.Ok;
    }

    public async ValueTask<FuseReadResult> ReadAsync(ulong nodeId, ulong handle, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _readCalls);
        SafeFileHandle? file;
        SafeFileHandle? perRead = null;
        if (handle == 0 && DeclineOpens)
        {
            // A zero-message open: no handle, so open the node's file for this read.
            Interlocked.Increment(ref _handleZeroReads);
            string? path = PathOf(nodeId);
            if (path is null)
            {
                return Errno.ESTALE;
            }
            file = perRead = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        }
        else if (!_files.TryGetValue(handle, out file))
        {
            return Errno.EBADF;
        }

        using (perRead)
        {
            if ((offset / 4096) % 2 == 1)
            {
                Interlocked.Increment(ref _asyncReads);
                await Task.Yield();
            }
            int total = 0;
            while (total < destination.Length)
            {
                int n = RandomAccess.Read(file, destination.Span[total..], offset + total);
                if (n == 0)
                {
                    break;
                }
                total += n;
            }
            return FuseReadResult.Bytes(total);
        }
    }

    public Errno Flush(ulong nodeId, ulong handle) => DeclineOpens ? Errno.ENOSYS : Errno.Ok;

    public void Release(ulong nodeId, ulong handle)
    {
        if (_files.TryRemove(handle, out SafeFileHandle? file))
        {
            file.Dispose();
        }
    }

    public Errno OpenDir(ulong nodeId, int flags, out FuseOpenResult result)
    {
        result = default;
        if (DeclineOpenDirs && _connection is { NoOpendirSupported: true })
        {
            return Errno.ENOSYS;
        }
        string? path = PathOf(nodeId);
        if (path is null || !Directory.Exists(path))
        {
            return Errno.ENOTDIR;
        }
        // A snapshot per open, as a listing must stay stable across the READDIR calls that page it.
        ulong handle = (ulong)Interlocked.Increment(ref _nextHandle);
        _directories[handle] = Snapshot(path);
        result.Handle = handle;
        result.Options = FuseOpenOptions.KeepCache | FuseOpenOptions.CacheDir;
        return Errno.Ok;
    }

    private static string[] Snapshot(string path)
    {
        var names = new List<string> { ".", ".." };
        foreach (string child in Directory.EnumerateFileSystemEntries(path))
        {
            names.Add(Path.GetFileName(child));
        }
        names.Sort(StringComparer.Ordinal);
        return [.. names];
    }

    public Errno ReadDir(ulong nodeId, ulong handle, ulong offset, ref DirectoryWriter writer)
    {
        string? directory = PathOf(nodeId);
        string[]? names;
        if (handle == 0 && DeclineOpenDirs)
        {
            // A zero-message opendir: no handle, so list the node's directory again. Sorted, and the
            // test source does not change, so the cookies of one listing hold across calls.
            Interlocked.Increment(ref _handleZeroReadDirs);
            if (directory is null || !Directory.Exists(directory))
            {
                return Errno.ESTALE;
            }
            names = Snapshot(directory);
        }
        else if (!_directories.TryGetValue(handle, out names))
        {
            return Errno.EBADF;
        }
        if (directory is null)
        {
            return Errno.ESTALE;
        }
        Span<byte> nameBytes = stackalloc byte[1024];
        for (ulong i = offset; i < (ulong)names.Length; i++)
        {
            string name = names[i];
            int length = Encoding.UTF8.GetBytes(name, nameBytes);
            bool dots = name is "." or "..";
            string path = dots ? directory : Path.Combine(directory, name);
            if (!TryStat(path, out FuseAttributes attributes))
            {
                continue; // vanished since OPENDIR
            }
            var entry = new FuseEntry { EntryTimeout = Timeout, AttrTimeout = Timeout, Attributes = attributes };
            if (writer.IsPlus && !dots)
            {
                // The entry counts as a lookup only if it makes it into the reply.
                Node node = Reference(path);
                entry.NodeId = node.Id;
                attributes.Ino = node.Id;
                entry.Attributes = attributes;
                if (!writer.TryAdd(nameBytes[..length], entry, i + 1))
                {
                    Forget(node.Id, 1);
                    break;
                }
            }
            else
            {
                attributes.Ino = dots ? nodeId : (ulong)(i + 1000000);
                entry.Attributes = attributes;
                if (!writer.TryAdd(nameBytes[..length], entry, i + 1))
                {
                    break;
                }
            }
        }
        return Errno.Ok;
    }

    public void ReleaseDir(ulong nodeId, ulong handle) => _directories.TryRemove(handle, out _);

    private string? PathOf(ulong nodeId)
    {
        lock (_nodesLock)
        {
            return _nodes.TryGetValue(nodeId, out Node? node) ? node.Path : null;
        }
    }

    private Node Reference(string path)
    {
        lock (_nodesLock)
        {
            if (!_byPath.TryGetValue(path, out Node? node))
            {
                node = new Node(_nextNodeId++, path);
                _byPath[path] = node;
                _nodes[node.Id] = node;
            }
            node.Lookups++;
            return node;
        }
    }

    internal static bool TryStat(string path, out FuseAttributes attributes)
    {
        attributes = default;
        var info = new FileInfo(path);
        if (!info.Exists && !Directory.Exists(path) && info.LinkTarget is null)
        {
            return false;
        }
        uint permissions = (uint)info.UnixFileMode & 0xFFF;
        uint type;
        ulong size;
        if (info.LinkTarget is not null)
        {
            // Linux symlinks are always 0777; .NET reports the target's mode, or none when it dangles.
            permissions = 0x1FF;
            type = FuseFileType.Symlink;
            size = (ulong)Encoding.UTF8.GetByteCount(info.LinkTarget);
        }
        else if ((info.Attributes & FileAttributes.Directory) != 0)
        {
            type = FuseFileType.Directory;
            size = 4096;
        }
        else
        {
            type = FuseFileType.Regular;
            size = (ulong)info.Length;
        }
        FuseTimestamp mtime = FuseTimestamp.FromDateTimeOffset(info.LastWriteTimeUtc);
        attributes = new FuseAttributes
        {
            Size = size,
            Blocks = (size + 511) / 512,
            ATime = FuseTimestamp.FromDateTimeOffset(info.LastAccessTimeUtc),
            MTime = mtime,
            CTime = mtime,
            Mode = type | permissions,
            NLink = type == FuseFileType.Directory ? 2u : 1u,
            BlockSize = 1 << 20,
        };
        return true;
    }

    private sealed class Node(ulong id, string path)
    {
        public ulong Id { get; } = id;
        public string Path { get; } = path;
        public long Lookups { get; set; }
        public BackingId? Backing { get; set; }
    }
}
