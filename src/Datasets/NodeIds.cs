using System.Text;

namespace CsiCache.Datasets;

/// <summary>
/// Node ids derived from the dataset-relative path: a 64-bit hash (FNV-1a over the UTF-8 bytes,
/// then the murmur3 finaliser to spread the bits). The same path gets the same id in every
/// process, so a restarted server that takes over the /dev/fuse connection can rebuild the
/// id → path table from the origin's listings alone, with no journal of what it handed out.
/// </summary>
/// <remarks>
/// A collision (another path already holds the id) is resolved by hashing again with a salt
/// (1, 2, …). That keeps ids unique; it makes the colliding path's id depend on which of the two
/// was seen first, which a takeover resolves by listing in the same order (listings are sorted by
/// name). At 2^64 ids a collision needs billions of entries to become likely.
/// Ids 0 (the kernel's "no node") and 1 (the root) are never produced for other paths.
/// </remarks>
internal static class NodeIds
{
    public const ulong Root = 1;

    public static ulong ForPath(string path, int salt)
    {
        if (path.Length == 0)
        {
            return Root;
        }
        ulong hash = 14695981039346656037UL; // FNV offset basis
        const ulong Prime = 1099511628211UL;
        Span<byte> buffer = stackalloc byte[256];
        ReadOnlySpan<char> rest = path;
        while (!rest.IsEmpty)
        {
            // Encode in slices so long paths need no heap buffer.
            int take = Math.Min(rest.Length, 64);
            if (take < rest.Length && char.IsHighSurrogate(rest[take - 1]))
            {
                take--;
            }
            int n = Encoding.UTF8.GetBytes(rest[..take], buffer);
            foreach (byte b in buffer[..n])
            {
                hash = (hash ^ b) * Prime;
            }
            rest = rest[take..];
        }
        for (int i = 0; i < 4; i++)
        {
            hash = (hash ^ (byte)(salt >> (8 * i))) * Prime;
        }

        // murmur3 fmix64: FNV's low bits are weak; the kernel hashes node ids into its inode table.
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        hash *= 0xc4ceb9fe1a85ec53UL;
        hash ^= hash >> 33;
        return hash <= Root ? hash + 2 : hash;
    }
}
