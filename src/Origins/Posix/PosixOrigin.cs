using System.Globalization;
using System.IO.Enumeration;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Origins.Posix;

/// <summary>
/// An origin over a directory on the node (a host path or an NFS mount), through file
/// descriptors resolved by the kernel under the root. Symlinks are listed as symlinks; following
/// one (stat/list/read through it) works only while it stays inside the root, so a dataset can
/// never serve the node's own files.
/// </summary>
/// <remarks>
/// Containment uses openat2(RESOLVE_BENEATH) from a handle on the root (Linux 5.6+): the kernel
/// refuses to leave the root while resolving, with no check-then-use race. Where openat2 is
/// missing or blocked by seccomp (ENOSYS/EPERM), it falls back to realpath(3) and a prefix check,
/// which a writer on the origin swapping symlinks mid-call could race.
/// No retries or timeouts here: a local or NFS call either works or fails with an errno, and a
/// hard-mounted NFS server that died blocks in the kernel where no user-space timeout can free the
/// thread (abandoning it would leave a late write into the caller's buffer). Mount NFS with
/// <c>soft,timeo=</c> when a clear error beats waiting.
/// </remarks>
internal sealed class PosixOrigin : IOrigin
{
    private readonly string _root;
    private readonly int _pageSize;
    private readonly Lock _rootLock = new();
    private SafeFileHandle? _rootHandle;
    private string? _realRoot;
    private volatile bool _useOpenat2;

    public PosixOrigin(DatasetSource source, OriginOptions options, bool allowOpenat2 = true)
    {
        _root = source.PosixRoot ?? throw new ArgumentException("not a file:// source", nameof(source));
        Identity = source.Identity;
        _pageSize = options.ListPageSize;
        _useOpenat2 = allowOpenat2;
    }

    public string Identity { get; }

    /// <summary>Whether containment is enforced by openat2 (true) or by the realpath fallback.</summary>
    internal bool UsesOpenat2 => _useOpenat2;

    public Task<OriginListPage> ListAsync(string directoryPath, string? continuationToken, CancellationToken ct)
    {
        OriginPaths.Validate(directoryPath, allowRoot: true);
        ct.ThrowIfCancellationRequested();
        using SafeFileHandle dir = OpenInside(directoryPath, Native.O_PATH | Native.O_CLOEXEC);
        var stx = StatHandle(dir, directoryPath);
        if (stx.FileType != Native.S_IFDIR)
            throw new OriginNotFoundException($"{Describe(directoryPath)} is not a directory");

        // Pages are in ordinal name order and the token is the last name returned, so a page is
        // stable across calls without server-side state. Each page re-reads the directory (getdents
        // is cheap), but only names that can still make it into this page are turned into strings:
        // a bounded max-heap keeps the smallest pageSize names above the token.
        // The directory is read through /proc/self/fd, i.e. the very directory we resolved.
        string procPath = "/proc/self/fd/" + dir.DangerousGetHandle().ToString(CultureInfo.InvariantCulture);
        string? after = continuationToken;
        var heap = new PriorityQueue<string, string>(_pageSize + 1, Comparer<string>.Create(static (a, b) => string.CompareOrdinal(b, a)));
        bool more = false;
        var enumeration = new FileSystemEnumerable<string>(procPath, static (ref FileSystemEntry e) => e.FileName.ToString(),
            new EnumerationOptions { RecurseSubdirectories = false, AttributesToSkip = 0, IgnoreInaccessible = false, ReturnSpecialDirectories = false })
        {
            ShouldIncludePredicate = (ref FileSystemEntry e) =>
            {
                ReadOnlySpan<char> name = e.FileName;
                if (after is not null && name.SequenceCompareTo(after) <= 0)
                    return false;
                if (heap.Count == _pageSize)
                {
                    // Full page: only a smaller name than the current largest gets in.
                    more = true;
                    return name.SequenceCompareTo(heap.Peek()) < 0;
                }
                return true;
            },
        };
        try
        {
            foreach (string name in enumeration)
            {
                heap.Enqueue(name, name);
                if (heap.Count > _pageSize)
                    heap.Dequeue();
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw MapIo(e, directoryPath);
        }

        var names = new string[heap.Count];
        for (int i = names.Length - 1; i >= 0; i--)
            names[i] = heap.Dequeue();

        var entries = new List<OriginEntry>(names.Length);
        foreach (string name in names)
        {
            // Relative to the directory handle, not following the name: race-free and contained.
            int rc = Native.TryStatAt(dir, name, followLinks: false, out var st);
            if (rc == Native.ENOENT)
                continue; // removed since readdir (or a name that is not valid UTF-8)
            if (rc != 0)
                throw ErrnoException(rc, OriginPaths.Join(directoryPath, name));
            OriginEntryKind? kind = st.FileType switch
            {
                Native.S_IFREG => OriginEntryKind.File,
                Native.S_IFDIR => OriginEntryKind.Directory,
                Native.S_IFLNK => OriginEntryKind.Symlink,
                _ => null, // fifos, sockets, devices: not dataset content
            };
            if (kind is null)
                continue;
            entries.Add(new OriginEntry(name, kind.Value, kind == OriginEntryKind.Directory ? 0 : (long)st.Size, st.Modified,
                kind == OriginEntryKind.File ? st.VersionToken : null));
        }
        string? next = more && names.Length > 0 ? names[^1] : null;
        return Task.FromResult(new OriginListPage(entries, next));
    }

    public Task<OriginObject> StatAsync(string path, CancellationToken ct)
    {
        OriginPaths.Validate(path, allowRoot: false);
        ct.ThrowIfCancellationRequested();
        using SafeFileHandle handle = OpenInside(path, Native.O_PATH | Native.O_CLOEXEC);
        var stx = StatHandle(handle, path);
        CheckRegularFile(stx, path);
        return Task.FromResult(new OriginObject(path, (long)stx.Size, stx.VersionToken, stx.Modified));
    }

    public async Task<int> ReadAsync(OriginObject obj, long offset, Memory<byte> destination, CancellationToken ct)
    {
        int want = OriginPaths.ReadLength(obj, offset, destination.Length);
        OriginPaths.Validate(obj.Path, allowRoot: false);
        using SafeFileHandle handle = OpenInside(obj.Path, Native.O_RDONLY | Native.O_NONBLOCK | Native.O_CLOEXEC);
        // Check the open file, not the path: the inode we read is the inode we checked.
        var before = StatHandle(handle, obj.Path);
        CheckRegularFile(before, obj.Path);
        CheckVersion(before, obj);
        int done = 0;
        try
        {
            while (done < want)
            {
                int n = await RandomAccess.ReadAsync(handle, destination.Slice(done, want - done), offset + done, ct);
                if (n == 0)
                    throw new OriginObjectChangedException($"{Describe(obj.Path)} is shorter than when it was stat'ed (changed at the origin)");
                done += n;
            }
        }
        catch (IOException e)
        {
            throw MapIo(e, obj.Path);
        }
        // Again after the read: an in-place write during it moves mtime, and then the bytes
        // may be a mix of two versions.
        CheckVersion(StatHandle(handle, obj.Path), obj);
        return done;
    }

    public Task<string?> ReadLinkAsync(string path, CancellationToken ct)
    {
        OriginPaths.Validate(path, allowRoot: false);
        ct.ThrowIfCancellationRequested();
        int slash = path.LastIndexOf('/');
        using SafeFileHandle parent = OpenInside(slash < 0 ? "" : path[..slash], Native.O_PATH | Native.O_CLOEXEC);
        string name = path[(slash + 1)..];
        int err = Native.TryStatAt(parent, name, followLinks: false, out var stx);
        if (err != 0)
            throw ErrnoException(err, path);
        if (stx.FileType != Native.S_IFLNK)
            return Task.FromResult<string?>(null);
        err = Native.TryReadLinkAt(parent, name, out string target);
        if (err != 0)
            throw ErrnoException(err, path);
        return Task.FromResult<string?>(target);
    }

    public void Dispose()
    {
        lock (_rootLock)
        {
            _rootHandle?.Dispose();
            _rootHandle = null;
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/> (relative to the root, "" for the root) with the given open
    /// flags, following symlinks only inside the root. Leaving the root is AccessDenied.
    /// </summary>
    private SafeFileHandle OpenInside(string path, ulong flags)
    {
        string relative = path.Length == 0 ? "." : path;
        int err;
        if (_useOpenat2)
        {
            err = Native.TryOpenBeneath(RootHandle(), relative, flags, out var handle);
            if (err == 0)
                return handle;
            handle.Dispose();
            if (err is not (Native.ENOSYS or Native.EPERM))
                throw OpenError(err, path);
            _useOpenat2 = false; // old kernel or a seccomp profile without openat2
        }

        string real = RealPathInside(path);
        err = Native.TryOpen(real, flags, out var fallback);
        if (err != 0)
        {
            fallback.Dispose();
            throw OpenError(err, path);
        }
        return fallback;
    }

    private SafeFileHandle RootHandle()
    {
        lock (_rootLock)
        {
            ObjectDisposedException.ThrowIf(_rootHandle is { IsClosed: true }, this);
            if (_rootHandle is not null)
                return _rootHandle;
            int err = Native.TryOpen(_root, Native.O_PATH | Native.O_CLOEXEC, out var handle);
            if (err != 0)
            {
                handle.Dispose();
                throw err is Native.ENOENT or Native.ENOTDIR
                    ? new OriginNotFoundException($"dataset root {Identity} does not exist")
                    : ErrnoException(err, "");
            }
            if (StatHandle(handle, "").FileType != Native.S_IFDIR)
            {
                handle.Dispose();
                throw new OriginNotFoundException($"dataset root {Identity} is not a directory");
            }
            // Held for the origin's life: resolution starts from the directory that was mounted,
            // even if the path is later renamed or covered.
            _rootHandle = handle;
            return handle;
        }
    }

    /// <summary>The realpath fallback: resolve, then refuse anything outside the root's real path.</summary>
    private string RealPathInside(string path)
    {
        string root = _realRoot ??= RealRoot();
        string full = path.Length == 0 ? root : Path.Join(root, path);
        int err = Native.TryRealPath(full, out string real);
        if (err != 0)
            throw OpenError(err, path);
        if (real != root && !(real.StartsWith(root, StringComparison.Ordinal) && (root == "/" || real[root.Length] == '/')))
            throw OpenError(Native.EXDEV, path);
        return real;
    }

    private string RealRoot()
    {
        int err = Native.TryRealPath(_root, out string real);
        if (err != 0)
            throw err is Native.ENOENT or Native.ENOTDIR
                ? new OriginNotFoundException($"dataset root {Identity} does not exist")
                : ErrnoException(err, "");
        return real;
    }

    private Native.Statx StatHandle(SafeFileHandle handle, string path)
    {
        int err = Native.TryStat(handle, out var stx);
        if (err != 0)
            throw ErrnoException(err, path);
        return stx;
    }

    private void CheckRegularFile(in Native.Statx stx, string path)
    {
        if (stx.FileType == Native.S_IFDIR)
            throw new OriginNotFoundException($"{Describe(path)} is a directory, not a file");
        if (stx.FileType != Native.S_IFREG)
            throw new OriginNotFoundException($"{Describe(path)} is not a regular file");
    }

    private void CheckVersion(in Native.Statx stx, OriginObject obj)
    {
        if (stx.VersionToken != obj.Version)
            throw new OriginObjectChangedException($"{Describe(obj.Path)} changed at the origin since it was stat'ed");
    }

    private string Describe(string path) => path.Length == 0 ? $"root of {Identity}" : $"'{path}' in {Identity}";

    private OriginException OpenError(int errno, string path) => errno switch
    {
        Native.EXDEV => new OriginAccessDeniedException($"{Describe(path)} leads outside the dataset root (through a symlink)"),
        // RESOLVE_NO_MAGICLINKS and symlink loops both end here.
        Native.ELOOP => new OriginNotFoundException($"{Describe(path)}: too many levels of symlinks"),
        _ => ErrnoException(errno, path),
    };

    private OriginException ErrnoException(int errno, string path) => errno switch
    {
        Native.ENOENT or Native.ENOTDIR => new OriginNotFoundException($"{Describe(path)} does not exist"),
        Native.EACCES or Native.EPERM => new OriginAccessDeniedException($"{Describe(path)}: permission denied"),
        Native.ELOOP => new OriginNotFoundException($"{Describe(path)}: too many levels of symlinks"),
        _ => new OriginUnavailableException($"{Describe(path)}: errno {errno}"),
    };

    private OriginException MapIo(Exception e, string path) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => new OriginNotFoundException($"{Describe(path)} does not exist", e),
        UnauthorizedAccessException => new OriginAccessDeniedException($"{Describe(path)}: permission denied", e),
        _ => new OriginUnavailableException($"{Describe(path)}: I/O error", e),
    };
}
