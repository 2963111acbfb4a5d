using CsiCache.Fuse.Protocol;

namespace CsiCache.Fuse;

/// <summary>Managed value types to wire structs.</summary>
internal static class FuseConversions
{
    public static FuseAttr ToAttr(in FuseAttributes a) => new()
    {
        Ino = a.Ino,
        Size = a.Size,
        Blocks = a.Blocks,
        Atime = (ulong)a.ATime.Seconds,
        Mtime = (ulong)a.MTime.Seconds,
        Ctime = (ulong)a.CTime.Seconds,
        AtimeNsec = a.ATime.Nanoseconds,
        MtimeNsec = a.MTime.Nanoseconds,
        CtimeNsec = a.CTime.Nanoseconds,
        Mode = a.Mode,
        Nlink = a.NLink,
        Uid = a.Uid,
        Gid = a.Gid,
        Rdev = a.RDev,
        Blksize = a.BlockSize,
    };

    public static FuseEntryOut ToEntryOut(in FuseEntry e)
    {
        SplitTimeout(e.EntryTimeout, out ulong entrySeconds, out uint entryNanos);
        SplitTimeout(e.AttrTimeout, out ulong attrSeconds, out uint attrNanos);
        return new FuseEntryOut
        {
            Nodeid = e.NodeId,
            Generation = e.Generation,
            EntryValid = entrySeconds,
            EntryValidNsec = entryNanos,
            AttrValid = attrSeconds,
            AttrValidNsec = attrNanos,
            Attr = ToAttr(e.Attributes),
        };
    }

    /// <summary>Negative timeouts mean "do not cache"; the kernel takes unsigned seconds + nanoseconds.</summary>
    public static void SplitTimeout(TimeSpan timeout, out ulong seconds, out uint nanoseconds)
    {
        if (timeout <= TimeSpan.Zero)
        {
            seconds = 0;
            nanoseconds = 0;
            return;
        }
        long ticks = timeout.Ticks;
        seconds = (ulong)(ticks / TimeSpan.TicksPerSecond);
        nanoseconds = (uint)(ticks % TimeSpan.TicksPerSecond * 100);
    }
}
