namespace CsiCache.Origins;

/// <summary>
/// A read-only view of one dataset root: list a directory (paged), stat an object, read a range.
/// Paths are relative to the root, '/'-separated, with no leading '/'; "" is the root itself.
/// Implementations are thread-safe: the dataset layer calls them concurrently.
/// </summary>
public interface IOrigin : IDisposable
{
    /// <summary>
    /// Stable, credential-free identity of the origin root (a normalised URI, the S3 endpoint
    /// included), so that two volumes over the same data share cache entries.
    /// Cache keys are <c>(Identity, OriginObject.Path, OriginObject.Version)</c>.
    /// </summary>
    string Identity { get; }

    /// <summary>
    /// Lists one page of a directory. Pass the previous page's <see cref="OriginListPage.ContinuationToken"/>
    /// to get the next; a null token in the result means the listing is complete. Tokens are opaque.
    /// </summary>
    /// <exception cref="OriginNotFoundException">the directory does not exist.</exception>
    Task<OriginListPage> ListAsync(string directoryPath, string? continuationToken, CancellationToken ct);

    /// <summary>Stats a regular file (POSIX symlinks inside the root are followed).</summary>
    /// <exception cref="OriginNotFoundException">no such file (or it is a directory).</exception>
    Task<OriginObject> StatAsync(string path, CancellationToken ct);

    /// <summary>
    /// Reads exactly <c>min(destination.Length, obj.Size - offset)</c> bytes at <paramref name="offset"/>
    /// (looping and resuming internally) and returns that count. Never returns bytes of another
    /// version than <see cref="OriginObject.Version"/>: a mismatch throws <see cref="OriginObjectChangedException"/>.
    /// </summary>
    Task<int> ReadAsync(OriginObject obj, long offset, Memory<byte> destination, CancellationToken ct);

    /// <summary>
    /// Stats a regular file and reads its first <c>min(destination.Length, size)</c> bytes, in one
    /// round trip where the origin can (HTTP: one ranged GET instead of a HEAD and a GET), with the
    /// bytes guaranteed to be of the returned version. Returns the object and the bytes read.
    /// The default stats, then reads.
    /// </summary>
    /// <exception cref="OriginNotFoundException">no such file (or it is a directory).</exception>
    async Task<(OriginObject Object, int Read)> StatAndReadAsync(string path, Memory<byte> destination, CancellationToken ct)
    {
        OriginObject obj = await StatAsync(path, ct).ConfigureAwait(false);
        int read = obj.Size == 0 || destination.IsEmpty ? 0 : await ReadAsync(obj, 0, destination, ct).ConfigureAwait(false);
        return (obj, read);
    }

    /// <summary>The target of a symlink (POSIX origins only); null where the origin has no symlinks.</summary>
    Task<string?> ReadLinkAsync(string path, CancellationToken ct) => Task.FromResult<string?>(null);
}
