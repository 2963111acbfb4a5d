using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace CsiCache.Cache;

/// <summary>
/// Identity of one version of one origin object. The hash covers the origin's identity, the
/// object's path and its version token (ETag, or size+mtime), so a changed object is a different
/// key: its old chunks are never mixed with new bytes, they just age out of the cache.
/// </summary>
/// <param name="Hash">
/// 32 lowercase hex digits (SHA-256 truncated to 128 bits). It names the chunk files, so it must
/// come from <see cref="From"/> or <see cref="TryParse"/>.
/// </param>
public readonly record struct ObjectKey(string Hash)
{
    /// <summary>Hex digits in <see cref="Hash"/>: 128 bits make an accidental collision as likely as a cosmic-ray bit flip in a lifetime of caches.</summary>
    public const int HashLength = 32;

    /// <summary>Derives the key of one object version. Each part is length-prefixed before hashing so that ("a/b", "c") and ("a", "b/c") never collide.</summary>
    public static ObjectKey From(string originIdentity, string path, string version)
    {
        ArgumentNullException.ThrowIfNull(originIdentity);
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(version);

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AppendPart(hash, "csicache-object-v1");
        AppendPart(hash, originIdentity);
        AppendPart(hash, path);
        AppendPart(hash, version);
        Span<byte> digest = stackalloc byte[32];
        hash.GetHashAndReset(digest);
        return new ObjectKey(Convert.ToHexStringLower(digest[..(HashLength / 2)]));
    }

    /// <summary>Parses a hash as found in a chunk file name; false unless it is exactly 32 lowercase hex digits.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out ObjectKey key)
    {
        if (IsValidHash(text))
        {
            key = new ObjectKey(text.ToString());
            return true;
        }
        key = default;
        return false;
    }

    /// <summary>True when <see cref="Hash"/> is well formed (a default-constructed key is not).</summary>
    public bool IsValid => Hash is not null && IsValidHash(Hash);

    /// <inheritdoc/>
    public override string ToString() => Hash ?? string.Empty;

    internal static bool IsValidHash(ReadOnlySpan<char> text)
    {
        if (text.Length != HashLength)
        {
            return false;
        }
        foreach (char c in text)
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }
        return true;
    }

    private static void AppendPart(IncrementalHash hash, string part)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(part);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
        hash.AppendData(length);
        hash.AppendData(bytes);
    }
}

/// <summary>One fixed-size chunk of one object version: bytes [Index × ChunkSize, (Index + 1) × ChunkSize) of the object.</summary>
public readonly record struct ChunkKey(ObjectKey Object, long Index)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Object.Hash}-{Index}";
}
