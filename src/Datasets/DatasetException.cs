namespace CsiCache.Datasets;

/// <summary>Why a dataset could not be mounted; the CSI node service maps each kind to a gRPC code.</summary>
public enum DatasetErrorKind
{
    /// <summary>The source or a parameter is malformed or unsupported (CSI: InvalidArgument).</summary>
    InvalidSource,

    /// <summary>The source (or its subPath) does not exist at the origin (CSI: NotFound).</summary>
    NotFound,

    /// <summary>The origin did not answer within the timeout and retries (CSI: Unavailable; kubelet retries).</summary>
    OriginUnavailable,

    /// <summary>The origin refused the credentials or access (CSI: PermissionDenied).</summary>
    AccessDenied,

    /// <summary>The FUSE mount itself failed: no /dev/fuse, no privilege, a busy mount point (CSI: Internal).</summary>
    MountFailed,
}

/// <summary>
/// A mount that failed, with a message a person can act on. Messages are built only from
/// credential-free parts (the parsed source identity, parameter names, errno text), never from
/// secrets, so they are safe to log and to return to a CSI caller.
/// </summary>
public sealed class DatasetException(DatasetErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>What went wrong, for mapping to a status code.</summary>
    public DatasetErrorKind Kind { get; } = kind;
}
