namespace CsiCache.Fuse;

/// <summary>A system call failed; carries the call's name and its errno.</summary>
public sealed class FuseNativeException : IOException
{
    public FuseNativeException(string call, int errno, string? detail = null)
        : base($"{call} failed: errno {errno} ({Native.StrError(errno)}){(detail is null ? "" : ": " + detail)}")
    {
        Call = call;
        Errno = errno;
        HResult = errno;
    }

    public string Call { get; }

    public int Errno { get; }
}
