namespace CsiCache.Fuse;

/// <summary>How a FUSE session mounts and what it negotiates with the kernel.</summary>
/// <remarks>Defaults suit an immutable, read-only dataset mounted by root for pods.</remarks>
public sealed record FuseOptions
{
    /// <summary>Mount with MS_RDONLY. Write requests are answered EROFS either way.</summary>
    public bool ReadOnly { get; init; } = true;

    /// <summary>
    /// Reader threads, each on its own cloned device descriptor. Metadata calls run on them, so
    /// more readers let more slow lookups wait at once; reads do not hold a reader while pending.
    /// </summary>
    public int ReaderThreads { get; init; } = 4;

    /// <summary>
    /// Largest READ, in bytes (a multiple of 4096). Sent as <c>max_pages</c> (7.28) and the
    /// <c>max_read</c> mount option; 1 MiB is the kernel's default ceiling of 256 pages.
    /// </summary>
    public int MaxRead { get; init; } = 1 << 20;

    /// <summary>
    /// <c>max_write</c>. A dataset takes no writes, but the kernel sizes its check of our read
    /// buffer by it (header + write_in + max_write), so a small value keeps request buffers small.
    /// </summary>
    public int MaxWrite { get; init; } = 128 << 10;

    /// <summary>
    /// Background requests (readahead, async reads) the kernel keeps in flight; its default of 12
    /// starves parallel readers of a fast cache.
    /// </summary>
    public ushort MaxBackground { get; init; } = 64;

    /// <summary>Background requests above which the kernel reports the filesystem congested.</summary>
    public ushort CongestionThreshold { get; init; } = 48;

    /// <summary>Ask for FUSE_PASSTHROUGH (7.40, needs CAP_SYS_ADMIN); used only if the kernel offers it.</summary>
    public bool EnablePassthrough { get; init; }

    /// <summary>Reads whose reply buffers may be in use at once; a reader waits beyond this (a memory bound).</summary>
    public int MaxPendingReads { get; init; } = 64;

    /// <summary>
    /// read_ahead_kb for the mount's backing device, set after INIT; 0 keeps the kernel's 128 KiB.
    /// Raising it lets buffered sequential reads become <see cref="MaxRead"/>-sized READs.
    /// </summary>
    public int ReadAheadKilobytes { get; init; } = 1024;

    /// <summary>Let users other than the mounter in (pods run as other users).</summary>
    public bool AllowOther { get; init; } = true;

    /// <summary>Let the kernel check permissions from the attributes, so ACCESS is never asked.</summary>
    public bool DefaultPermissions { get; init; } = true;

    /// <summary>The mount's source as shown in /proc/self/mountinfo.</summary>
    public string Source { get; init; } = "csicache";

    /// <summary>The filesystem type becomes <c>fuse.</c> + this.</summary>
    public string Subtype { get; init; } = "csicache";

    /// <summary>Owner of the mount (the <c>user_id</c>/<c>group_id</c> options): who may unmount it.</summary>
    public uint UserId { get; init; }

    public uint GroupId { get; init; }

    /// <summary>Where the session reports problems (handler exceptions, device errors); null = silent.</summary>
    public Action<string>? Log { get; init; }

    internal void Validate()
    {
        if (MaxRead < 4096 || MaxRead % 4096 != 0 || MaxRead / 4096 > ushort.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRead), MaxRead, "must be a positive multiple of 4096");
        }
        if (MaxWrite < 4096)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxWrite), MaxWrite, "the kernel uses at least 4096");
        }
        if (ReaderThreads < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(ReaderThreads), ReaderThreads, "at least one reader");
        }
        if (MaxPendingReads < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPendingReads), MaxPendingReads, "at least one read");
        }
    }
}
