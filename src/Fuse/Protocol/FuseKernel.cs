using System.Runtime.InteropServices;

namespace CsiCache.Fuse.Protocol;

// The wire structs of fuse_kernel.h (protocol 7.45), field for field, in the kernel's order.
// They are read and written in place with MemoryMarshal, so their layout is the protocol:
// FuseLayoutTests pins every size. Comments name the minor version a struct or field appeared in
// where it matters for older kernels.

/// <summary>The kernel's protocol constants.</summary>
internal static class FuseKernel
{
    public const uint KernelVersion = 7;
    /// <summary>The minor version this code implements (fuse_kernel.h 7.45).</summary>
    public const uint KernelMinorVersion = 45;
    public const ulong RootId = 1;
    /// <summary>The kernel refuses device reads with a smaller buffer.</summary>
    public const int MinReadBuffer = 8192;
    /// <summary>Set in <c>unique</c> when the kernel resends a request after FUSE_NOTIFY_RESEND (7.40).</summary>
    public const ulong UniqueResend = 1UL << 63;
    public const int PageSize = 4096;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseAttr
{
    public ulong Ino;
    public ulong Size;
    public ulong Blocks;
    public ulong Atime;
    public ulong Mtime;
    public ulong Ctime;
    public uint AtimeNsec;
    public uint MtimeNsec;
    public uint CtimeNsec;
    public uint Mode;
    public uint Nlink;
    public uint Uid;
    public uint Gid;
    public uint Rdev;
    /// <summary>7.9.</summary>
    public uint Blksize;
    /// <summary>7.32 (FUSE_ATTR_SUBMOUNT, FUSE_ATTR_DAX).</summary>
    public uint Flags;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseKstatfs
{
    public ulong Blocks;
    public ulong Bfree;
    public ulong Bavail;
    public ulong Files;
    public ulong Ffree;
    public uint Bsize;
    public uint Namelen;
    public uint Frsize;
    public uint Padding;
    public Spare6 Spare;

    [System.Runtime.CompilerServices.InlineArray(6)]
    public struct Spare6
    {
        private uint _element;
    }
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseEntryOut
{
    public ulong Nodeid;
    public ulong Generation;
    public ulong EntryValid;
    public ulong AttrValid;
    public uint EntryValidNsec;
    public uint AttrValidNsec;
    public FuseAttr Attr;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseForgetIn
{
    public ulong Nlookup;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseForgetOne
{
    public ulong Nodeid;
    public ulong Nlookup;
}

/// <summary>7.16; followed by <see cref="Count"/> <see cref="FuseForgetOne"/>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseBatchForgetIn
{
    public uint Count;
    public uint Dummy;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseGetattrIn
{
    public uint GetattrFlags;
    public uint Dummy;
    public ulong Fh;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseAttrOut
{
    public ulong AttrValid;
    public uint AttrValidNsec;
    public uint Dummy;
    public FuseAttr Attr;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseOpenIn
{
    public uint Flags;
    /// <summary>FUSE_OPEN_KILL_SUIDGID (7.33).</summary>
    public uint OpenFlags;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseOpenOut
{
    public ulong Fh;
    public uint OpenFlags;
    /// <summary>7.40, with FOPEN_PASSTHROUGH.</summary>
    public int BackingId;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseReleaseIn
{
    public ulong Fh;
    public uint Flags;
    public uint ReleaseFlags;
    public ulong LockOwner;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseFlushIn
{
    public ulong Fh;
    public uint Unused;
    public uint Padding;
    public ulong LockOwner;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseReadIn
{
    public ulong Fh;
    public ulong Offset;
    public uint Size;
    public uint ReadFlags;
    public ulong LockOwner;
    public uint Flags;
    public uint Padding;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseStatfsOut
{
    public FuseKstatfs St;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseGetxattrIn
{
    public uint Size;
    public uint Padding;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseGetxattrOut
{
    public uint Size;
    public uint Padding;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseAccessIn
{
    public uint Mask;
    public uint Padding;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseInitIn
{
    public uint Major;
    public uint Minor;
    public uint MaxReadahead;
    public uint Flags;
    /// <summary>7.36, valid with FUSE_INIT_EXT.</summary>
    public uint Flags2;
    public Unused11 Unused;

    [System.Runtime.CompilerServices.InlineArray(11)]
    public struct Unused11
    {
        private uint _element;
    }
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseInitOut
{
    public uint Major;
    public uint Minor;
    public uint MaxReadahead;
    public uint Flags;
    public ushort MaxBackground;
    public ushort CongestionThreshold;
    public uint MaxWrite;
    /// <summary>7.23; the INIT reply is 24 bytes before this field.</summary>
    public uint TimeGran;
    /// <summary>7.28, with FUSE_MAX_PAGES.</summary>
    public ushort MaxPages;
    public ushort MapAlignment;
    /// <summary>7.36.</summary>
    public uint Flags2;
    /// <summary>7.40, with FUSE_PASSTHROUGH.</summary>
    public uint MaxStackDepth;
    /// <summary>7.43, seconds; 0 = no timeout.</summary>
    public ushort RequestTimeout;
    public Unused11 Unused;

    [System.Runtime.CompilerServices.InlineArray(11)]
    public struct Unused11
    {
        private ushort _element;
    }
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseInterruptIn
{
    public ulong Unique;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseInHeader
{
    public uint Len;
    public uint Opcode;
    public ulong Unique;
    public ulong Nodeid;
    public uint Uid;
    public uint Gid;
    public uint Pid;
    /// <summary>7.38: length of extensions after the body, in 8-byte units.</summary>
    public ushort TotalExtlen;
    public ushort Padding;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FuseOutHeader
{
    public uint Len;
    /// <summary>0 or a negated errno.</summary>
    public int Error;
    public ulong Unique;
}

/// <summary>Fixed head of a READDIR record; the name follows, the record padded to 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseDirent
{
    public ulong Ino;
    /// <summary>The offset of the next entry: the cookie a later READDIR passes back.</summary>
    public ulong Off;
    public uint Namelen;
    /// <summary>DT_* type, i.e. <c>(mode &amp; S_IFMT) &gt;&gt; 12</c>.</summary>
    public uint Type;
}

/// <summary>Fixed head of a READDIRPLUS record (7.21): an entry then a dirent, name after.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseDirentplus
{
    public FuseEntryOut EntryOut;
    public FuseDirent Dirent;
}

/// <summary>Argument of FUSE_DEV_IOC_BACKING_OPEN (7.40).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseBackingMap
{
    public int Fd;
    public uint Flags;
    public ulong Padding;
}
