namespace CsiCache.Fuse;

/// <summary>A point in time as the kernel stores it: seconds since the Unix epoch plus nanoseconds.</summary>
public readonly record struct FuseTimestamp(long Seconds, uint Nanoseconds)
{
    public static FuseTimestamp FromDateTimeOffset(DateTimeOffset value)
    {
        long ticks = value.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        long seconds = Math.DivRem(ticks, TimeSpan.TicksPerSecond, out long rest);
        if (rest < 0)
        {
            seconds--;
            rest += TimeSpan.TicksPerSecond;
        }
        return new FuseTimestamp(seconds, (uint)(rest * 100));
    }
}

/// <summary>File type bits of <see cref="FuseAttributes.Mode"/> (the S_IF* values of stat(2)).</summary>
public static class FuseFileType
{
    public const uint Mask = 0xF000;
    public const uint Socket = 0xC000;
    public const uint Symlink = 0xA000;
    public const uint Regular = 0x8000;
    public const uint BlockDevice = 0x6000;
    public const uint Directory = 0x4000;
    public const uint CharDevice = 0x2000;
    public const uint Fifo = 0x1000;
}

/// <summary>
/// The attributes of one inode, the managed face of <c>struct fuse_attr</c>.
/// <see cref="Mode"/> carries the file type bits (<see cref="FuseFileType"/>) and the permission bits.
/// </summary>
public struct FuseAttributes
{
    /// <summary>The inode number userspace sees in st_ino; usually the node id.</summary>
    public ulong Ino { get; set; }
    public ulong Size { get; set; }
    /// <summary>Allocated 512-byte blocks (st_blocks); <c>(Size + 511) / 512</c> is a fair answer.</summary>
    public ulong Blocks { get; set; }
    public FuseTimestamp ATime { get; set; }
    public FuseTimestamp MTime { get; set; }
    public FuseTimestamp CTime { get; set; }
    public uint Mode { get; set; }
    public uint NLink { get; set; }
    public uint Uid { get; set; }
    public uint Gid { get; set; }
    public uint RDev { get; set; }
    /// <summary>Preferred I/O size reported in st_blksize; 0 lets the kernel pick.</summary>
    public uint BlockSize { get; set; }
}

/// <summary>
/// The answer to a name lookup (<c>struct fuse_entry_out</c>): which node a name refers to, its
/// attributes, and how long the kernel may cache the name and the attributes without asking again.
/// </summary>
public struct FuseEntry
{
    /// <summary>The node id the kernel will use for this inode in later requests. Never 1 except for the root.</summary>
    public ulong NodeId { get; set; }
    /// <summary>(NodeId, Generation) must be unique over the filesystem's lifetime when node ids are reused.</summary>
    public ulong Generation { get; set; }
    /// <summary>How long the kernel may trust the name → node binding (dentry cache).</summary>
    public TimeSpan EntryTimeout { get; set; }
    /// <summary>How long the kernel may trust <see cref="Attributes"/>.</summary>
    public TimeSpan AttrTimeout { get; set; }
    public FuseAttributes Attributes { get; set; }
}

/// <summary>FOPEN_* bits of <c>fuse_open_out.open_flags</c>; the values are the kernel's.</summary>
[Flags]
public enum FuseOpenOptions : uint
{
    None = 0,
    /// <summary>Bypass the page cache for this open file.</summary>
    DirectIo = 1 << 0,
    /// <summary>Keep cached pages from earlier opens: right for immutable data.</summary>
    KeepCache = 1 << 1,
    NonSeekable = 1 << 2,
    /// <summary>For OPENDIR: let the kernel cache the directory listing (7.28).</summary>
    CacheDir = 1 << 3,
    Stream = 1 << 4,
    /// <summary>Skip FLUSH on close (7.35): nothing to flush on a read-only file.</summary>
    NoFlush = 1 << 5,
    ParallelDirectWrites = 1 << 6,
    /// <summary>Serve reads from <see cref="FuseOpenResult.BackingId"/> inside the kernel (7.40).</summary>
    Passthrough = 1 << 7,
}

/// <summary>What <see cref="IFuseFileSystem.Open"/> and <see cref="IFuseFileSystem.OpenDir"/> return.</summary>
public struct FuseOpenResult
{
    /// <summary>An opaque handle the kernel passes back on every READ/READDIR/RELEASE for this open.</summary>
    public ulong Handle { get; set; }
    public FuseOpenOptions Options { get; set; }
    /// <summary>
    /// With <see cref="FuseOpenOptions.Passthrough"/>: the id from <see cref="Passthrough.BackingId.Id"/>.
    /// The <see cref="Passthrough.BackingId"/> must stay undisposed until this handle is released.
    /// </summary>
    public int BackingId { get; set; }
}

/// <summary>The answer to statfs(2) (<c>struct fuse_kstatfs</c>).</summary>
public struct FuseStatFs
{
    public ulong Blocks { get; set; }
    public ulong BlocksFree { get; set; }
    public ulong BlocksAvailable { get; set; }
    public ulong Files { get; set; }
    public ulong FilesFree { get; set; }
    public uint BlockSize { get; set; }
    public uint NameLength { get; set; }
    public uint FragmentSize { get; set; }
}

/// <summary>The outcome of <see cref="IFuseFileSystem.ReadAsync"/>: a byte count or an error.</summary>
public readonly record struct FuseReadResult(int BytesRead, Errno Error)
{
    public static FuseReadResult Bytes(int count) => new(count, Errno.Ok);

    public static implicit operator FuseReadResult(Errno error) => new(0, error);
}
