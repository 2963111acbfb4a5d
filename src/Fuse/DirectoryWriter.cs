using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CsiCache.Fuse.Protocol;

namespace CsiCache.Fuse;

/// <summary>
/// Packs directory entries into a READDIR or READDIRPLUS reply, in the kernel's record format
/// (<c>fuse_dirent</c> / <c>fuse_direntplus</c>, each padded to 8 bytes), straight into the reply
/// buffer: nothing is allocated per entry.
/// </summary>
/// <remarks>
/// The filesystem calls <see cref="TryAdd"/> for each entry from the requested offset on, and stops
/// at the first <c>false</c> (the reply is full; the kernel asks again from that entry's offset).
/// <para>
/// In READDIRPLUS mode (<see cref="IsPlus"/>), every entry that <see cref="TryAdd"/> accepts with a
/// non-zero <see cref="FuseEntry.NodeId"/>, other than "." and "..", counts as one lookup of that
/// node, exactly as if LOOKUP had returned it: the kernel will FORGET it later. In plain READDIR mode
/// only <see cref="FuseAttributes.Ino"/> (or <see cref="FuseEntry.NodeId"/> when that is 0) and the
/// file type of <see cref="FuseAttributes.Mode"/> are used, and no lookup is counted.
/// </para>
/// </remarks>
public ref struct DirectoryWriter
{
    private static readonly int DirentSize = Unsafe.SizeOf<FuseDirent>();
    private static readonly int DirentplusSize = Unsafe.SizeOf<FuseDirentplus>();

    private readonly Span<byte> _buffer;
    private int _length;
    private int _count;

    /// <summary>
    /// A writer over <paramref name="buffer"/> (the reply body). The dispatcher makes one per READDIR;
    /// public so that a filesystem's tests can drive <see cref="IFuseFileSystem.ReadDir"/> without a kernel.
    /// </summary>
    public DirectoryWriter(Span<byte> buffer, bool plus)
    {
        _buffer = buffer;
        IsPlus = plus;
    }

    /// <summary>True for READDIRPLUS: entries carry attributes and count as lookups.</summary>
    public bool IsPlus { get; }

    /// <summary>Entries accepted so far.</summary>
    public readonly int Count => _count;

    /// <summary>Bytes written so far.</summary>
    public readonly int Length => _length;

    /// <summary>
    /// Appends one entry, or returns false without writing anything when it does not fit.
    /// </summary>
    /// <param name="name">The entry's name in bytes (no NUL, no '/').</param>
    /// <param name="entry">The entry; see the type remarks for what each mode uses.</param>
    /// <param name="nextOffset">
    /// The cookie that resumes the listing just after this entry; never 0 (0 means "from the start").
    /// </param>
    public bool TryAdd(scoped ReadOnlySpan<byte> name, in FuseEntry entry, ulong nextOffset)
    {
        int head = IsPlus ? DirentplusSize : DirentSize;
        int recordLength = Align8(head + name.Length);
        if (_length + recordLength > _buffer.Length)
        {
            return false;
        }

        Span<byte> record = _buffer.Slice(_length, recordLength);
        FuseAttributes attributes = entry.Attributes;
        var dirent = new FuseDirent
        {
            Ino = attributes.Ino != 0 ? attributes.Ino : entry.NodeId,
            Off = nextOffset,
            Namelen = (uint)name.Length,
            Type = (attributes.Mode & FuseFileType.Mask) >> 12,
        };

        if (IsPlus)
        {
            var plus = new FuseDirentplus { Dirent = dirent };
            if (!IsDotOrDotDot(name))
            {
                // "." and ".." never create a lookup reference in the kernel, so they go out without one.
                plus.EntryOut = FuseConversions.ToEntryOut(entry);
            }
            MemoryMarshal.Write(record, in plus);
        }
        else
        {
            MemoryMarshal.Write(record, in dirent);
        }

        name.CopyTo(record[head..]);
        record[(head + name.Length)..].Clear();
        _length += recordLength;
        _count++;
        return true;
    }

    internal static bool IsDotOrDotDot(ReadOnlySpan<byte> name) =>
        (name.Length == 1 && name[0] == (byte)'.') ||
        (name.Length == 2 && name[0] == (byte)'.' && name[1] == (byte)'.');

    private static int Align8(int value) => (value + 7) & ~7;
}
