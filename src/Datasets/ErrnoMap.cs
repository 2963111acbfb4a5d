using CsiCache.Fuse;
using CsiCache.Origins;

namespace CsiCache.Datasets;

/// <summary>
/// The one place where a failure becomes an errno for the kernel (Mountpoint's <c>ToErrno</c>).
/// Exhaustive over the origin's exception types; anything unexpected is EIO, never a hang.
/// </summary>
internal static class ErrnoMap
{
    public static Errno From(Exception exception) => exception switch
    {
        OriginNotFoundException => Errno.ENOENT,
        // The object changed at the origin since this handle saw it: the old bytes are gone and the
        // new ones must not be mixed in. The reader reopens to get the new version.
        OriginObjectChangedException => Errno.ESTALE,
        OriginAccessDeniedException => Errno.EACCES,
        OriginUnavailableException => Errno.EIO,
        OriginInvalidSourceException => Errno.EIO,
        OriginException => Errno.EIO,
        // The session is stopping (unmount); the reader gets an error rather than a hang.
        OperationCanceledException => Errno.EINTR,
        ObjectDisposedException => Errno.EIO,
        IOException => Errno.EIO,
        AggregateException { InnerExceptions.Count: 1 } aggregate => From(aggregate.InnerExceptions[0]),
        _ => Errno.EIO,
    };

    /// <summary>Whether the failure is the origin's expected kind (logged at Debug) rather than a bug (logged at Warning).</summary>
    public static bool IsExpected(Exception exception) => exception is OriginException or OperationCanceledException;

    /// <summary>What a mount failure means to a CSI caller.</summary>
    public static DatasetErrorKind KindOf(OriginException exception) => exception switch
    {
        OriginNotFoundException => DatasetErrorKind.NotFound,
        OriginAccessDeniedException => DatasetErrorKind.AccessDenied,
        OriginInvalidSourceException => DatasetErrorKind.InvalidSource,
        _ => DatasetErrorKind.OriginUnavailable,
    };
}
