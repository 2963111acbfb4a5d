using System.IO.Enumeration;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Origins.Posix;

/// <summary>
/// An origin over a directory on the node (a host path or an NFS mount), through ordinary file
/// APIs plus statx/realpath. Symlinks are listed as symlinks; following one (stat/read through it)
/// is allowed only while it resolves inside the root, so a dataset cannot serve the node's files.
/// </summary>
/// <remarks>
/// No retries or timeouts here: a local or NFS read either works or fails with an errno, and a
/// hard-mounted NFS server that died blocks in the kernel where no user-space timeout can free the
/// thread (abandoning it would leave a late write into the caller's buffer). Mount NFS with
/// <c>soft,timeo=</c> when a clear error beats waiting.
/// </remarks>
internal sealed class PosixOrigin : IOrigin
{
    private readonly string _root;
    private readonly int _pageSize;
    private string? _realRoot;

    public PosixOrigin(DatasetSource source, OriginOptions options)
    {
        _root = source.PosixRoot ?? throw new ArgumentException("not a file:// source", nameof(source));
        Identity = source.Identity;
        _pageSize = options.ListPageSize;
    }

    public string Identity { get; }

    public Task<OriginListPage> ListAsync(string directoryPath, string? continuationToken, CancellationToken ct)
    {
        OriginPaths.Validate(directoryPath, allowRoot: true);
        ct.ThrowIfCancellationRequested();
        string dir = Resolve(directoryPath, out var stx);
        if (stx.FileType != Native.S_IFDIR)
            throw new OriginNotFoundException($"{Describe(directoryPath)} is not a directory");

        // Pages are in ordinal name order and the token is the last name returned, so a page is
        // stable across calls without server-side state. Each page re-reads the directory (getdents
        // is cheap), but only names that can still make it into this page are turned into strings:
        // a bounded max-heap keeps the smallest pageSize names above the token.
        string? after = continuationToken;
        var heap = new PriorityQueue<string, string>(_pageSize + 1, Comparer<string>.Create(static (a, b) => string.CompareOrdinal(b, a)));
        bool more = false;
        var enumeration = new FileSystemEnumerable<string>(dir, static (ref FileSystemEntry e) => e.FileName.ToString(),
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
            int rc = Native.TryStat(Path.Join(dir, name), followLinks: false, out var st);
            if (rc == Native.ENOENT)
                continue; // removed since readdir
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
        Resolve(path, out var stx);
        if (stx.FileType == Native.S_IFDIR)
            throw new OriginNotFoundException($"{Describe(path)} is a directory, not a file");
        if (stx.FileType != Native.S_IFREG)
            throw new OriginNotFoundException($"{Describe(path)} is not a regular file");
        return Task.FromResult(new OriginObject(path, (long)stx.Size, stx.VersionToken, stx.Modified));
    }

    public async Task<int> ReadAsync(OriginObject obj, long offset, Memory<byte> destination, CancellationToken ct)
    {
        int want = OriginPaths.ReadLength(obj, offset, destination.Length);
        OriginPaths.Validate(obj.Path, allowRoot: false);
        string full = Resolve(obj.Path, out _);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw MapIo(e, obj.Path);
        }
        using (handle)
        {
            // Check the open file, not the path: the inode we read is the inode we checked.
            CheckVersion(handle, obj);
            int done = 0;
            try
            {
                while (done < want)
                {
                    int n = await RandomAccess.ReadAsync(handle, destination.Slice(done, want - done), offset + done, ct);
                    if (n == 0)
                        throw new OriginObjectChangedException($"{Describe(obj.Path)} is shorter than when it was opened (changed at the origin)");
                    done += n;
                }
            }
            catch (IOException e)
            {
                throw MapIo(e, obj.Path);
            }
            // Again after the read: an in-place write during it moves mtime, and then the bytes
            // may be a mix of two versions.
            CheckVersion(handle, obj);
            return done;
        }
    }

    public Task<string?> ReadLinkAsync(string path, CancellationToken ct)
    {
        OriginPaths.Validate(path, allowRoot: false);
        ct.ThrowIfCancellationRequested();
        int slash = path.LastIndexOf('/');
        string parent = slash < 0 ? Resolve("", out _) : Resolve(path[..slash], out _);
        string full = Path.Join(parent, path[(slash + 1)..]);
        int err = Native.TryStat(full, followLinks: false, out var stx);
        if (err != 0)
            throw ErrnoException(err, path);
        if (stx.FileType != Native.S_IFLNK)
            return Task.FromResult<string?>(null);
        try
        {
            return Task.FromResult(new FileInfo(full).LinkTarget);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw MapIo(e, path);
        }
    }

    public void Dispose()
    {
        // Nothing held: every call opens and closes what it uses.
    }

    private void CheckVersion(SafeFileHandle handle, OriginObject obj)
    {
        int err = Native.TryStat(handle, out var stx);
        if (err != 0)
            throw ErrnoException(err, obj.Path);
        if (stx.VersionToken != obj.Version)
            throw new OriginObjectChangedException($"{Describe(obj.Path)} changed at the origin since it was stat'ed");
    }

    /// <summary>
    /// Resolves a relative path to a real path inside the root (symlinks followed) and stats it.
    /// A path that resolves outside the root is refused. realpath then open is a check-then-use
    /// race against someone swapping symlinks on the origin; openat2(RESOLVE_BENEATH) would close
    /// it and is the planned refinement.
    /// </summary>
    private string Resolve(string path, out Native.Statx stx)
    {
        string root = RealRoot();
        string full = path.Length == 0 ? root : Path.Join(root, path);
        int err = Native.TryRealPath(full, out string real);
        if (err != 0)
            throw ErrnoException(err, path);
        if (real != root && !(real.StartsWith(root, StringComparison.Ordinal) && (root == "/" || real[root.Length] == '/')))
            throw new OriginAccessDeniedException($"{Describe(path)} is a symlink that leads outside the dataset root");
        err = Native.TryStat(real, followLinks: false, out stx);
        if (err != 0)
            throw ErrnoException(err, path);
        return real;
    }

    private string RealRoot()
    {
        if (_realRoot is { } r)
            return r;
        int err = Native.TryRealPath(_root, out string real);
        if (err != 0)
            throw err == Native.ENOENT || err == Native.ENOTDIR
                ? new OriginNotFoundException($"dataset root {Identity} does not exist")
                : ErrnoException(err, "");
        _realRoot = real;
        return real;
    }

    private string Describe(string path) => path.Length == 0 ? $"root of {Identity}" : $"'{path}' in {Identity}";

    private OriginException ErrnoException(int errno, string path) => errno switch
    {
        Native.ENOENT or Native.ENOTDIR => new OriginNotFoundException($"{Describe(path)} does not exist"),
        Native.EACCES or 1 /* EPERM */ => new OriginAccessDeniedException($"{Describe(path)}: permission denied"),
        Native.ELOOP => new OriginNotFoundException($"{Describe(path)}: too many levels of symlinks"),
        _ => new OriginUnavailableException($"{Describe(path)}: errno {errno}"),
    };

    private OriginException MapIo(Exception e, string path) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => new OriginNotFoundException($"{Describe(path)} does not exist", e),
        UnauthorizedAccessException => new OriginAccessDeniedException($"{Describe(path)}: permission denied", e),
        _ => new OriginUnavailableException($"{Describe(path)}: {e.Message}", e),
    };
}
