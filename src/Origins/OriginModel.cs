namespace CsiCache.Origins;

/// <summary>The kind of a directory entry.</summary>
public enum OriginEntryKind
{
    File,
    Directory,
    Symlink,
}

/// <summary>
/// One directory entry. <paramref name="Size"/> is -1 and <paramref name="Modified"/>/<paramref name="Version"/>
/// are null where the listing does not say (HTTP autoindex pages often omit or round them);
/// directories have size 0. A symlink's size is the length of its target (as lstat reports).
/// </summary>
public sealed record OriginEntry(string Name, OriginEntryKind Kind, long Size, DateTimeOffset? Modified, string? Version);

/// <summary>One page of a directory listing; <paramref name="ContinuationToken"/> is null on the last page.</summary>
public sealed record OriginListPage(IReadOnlyList<OriginEntry> Entries, string? ContinuationToken);

/// <summary>
/// What a read needs: the object's path (relative to the origin root), its size, and the version
/// token the bytes must belong to (S3/HTTP: the ETag; HTTP without ETag: Last-Modified + length;
/// POSIX: size + mtime + inode).
/// </summary>
public sealed record OriginObject(string Path, long Size, string Version, DateTimeOffset? Modified);
