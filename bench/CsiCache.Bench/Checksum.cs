using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace CsiCache.Bench;

/// <summary>
/// A cheap, position-sensitive checksum of what a reader got, computed inside the timed loop for
/// every tool alike (native included), so a fast wrong answer is caught without a hash that costs
/// more than the read. Fletcher-style over 256-bit lanes (two adds per 32 bytes, far above memory
/// bandwidth), then mixed with the block's index so swapped or misplaced blocks differ.
/// Not cryptographic: it guards against bugs, not adversaries.
/// </summary>
internal static class Checksum
{
    private const ulong Prime1 = 0x9E3779B185EBCA87UL;
    private const ulong Prime2 = 0xC2B2AE3D27D4EB4FUL;

    /// <summary>Checksum of one block (a read of up to the block size at a block-aligned position).</summary>
    public static ulong Block(ReadOnlySpan<byte> data, long blockIndex)
    {
        Vector256<ulong> s1 = Vector256<ulong>.Zero, s2 = Vector256<ulong>.Zero;
        ReadOnlySpan<Vector256<ulong>> vectors = MemoryMarshal.Cast<byte, Vector256<ulong>>(data);
        foreach (Vector256<ulong> v in vectors)
        {
            s1 += v;
            s2 += s1;
        }
        ulong h = Mix((ulong)blockIndex * Prime1 ^ (ulong)data.Length);
        for (int lane = 0; lane < Vector256<ulong>.Count; lane++)
        {
            h = Mix(h ^ s1.GetElement(lane)) + Mix(s2.GetElement(lane) + (ulong)lane);
        }
        ReadOnlySpan<byte> tail = data[(vectors.Length * Vector256<byte>.Count)..];
        while (tail.Length >= 8)
        {
            h = Mix(h ^ BinaryPrimitives.ReadUInt64LittleEndian(tail));
            tail = tail[8..];
        }
        foreach (byte b in tail)
        {
            h = Mix(h ^ b);
        }
        return h;
    }

    /// <summary>Folds block checksums of one file, in block order, into the file's checksum.</summary>
    public static ulong Combine(ulong fileHash, ulong blockHash) => BitOperations.RotateLeft(fileHash, 23) * Prime2 ^ blockHash;

    private static ulong Mix(ulong x)
    {
        x ^= x >> 33;
        x *= Prime1;
        x ^= x >> 29;
        x *= Prime2;
        x ^= x >> 32;
        return x;
    }
}
