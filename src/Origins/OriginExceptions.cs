namespace CsiCache.Origins;

/// <summary>
/// Base of every failure an origin reports. Messages name the path and the origin, never a
/// credential, so they are safe to log and to return to a CSI caller.
/// </summary>
public class OriginException : Exception
{
    public OriginException(string message) : base(message) { }
    public OriginException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>The path does not exist at the origin (HTTP/S3 404, ENOENT). Not retried.</summary>
public sealed class OriginNotFoundException : OriginException
{
    public OriginNotFoundException(string message) : base(message) { }
    public OriginNotFoundException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>
/// The object's version at the origin differs from the one the read asked for
/// (S3 412 on If-Match, HTTP ETag/Content-Range mismatch, POSIX token mismatch). Maps to ESTALE.
/// </summary>
public sealed class OriginObjectChangedException : OriginException
{
    public OriginObjectChangedException(string message) : base(message) { }
    public OriginObjectChangedException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>The origin is unreachable, timed out or kept failing (5xx/429) after the bounded retries.</summary>
public sealed class OriginUnavailableException : OriginException
{
    public OriginUnavailableException(string message) : base(message) { }
    public OriginUnavailableException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>The origin refused access (HTTP 401/403, S3 AccessDenied, EACCES, a symlink leaving the root). Not retried.</summary>
public sealed class OriginAccessDeniedException : OriginException
{
    public OriginAccessDeniedException(string message) : base(message) { }
    public OriginAccessDeniedException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>The dataset source or one of its parameters is invalid; the message names the parameter.</summary>
public sealed class OriginInvalidSourceException : OriginException
{
    public OriginInvalidSourceException(string message) : base(message) { }
    public OriginInvalidSourceException(string message, Exception? inner) : base(message, inner) { }
}
