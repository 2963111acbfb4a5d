namespace CsiCache.Origins;

/// <summary>Checks the relative paths callers hand to an origin, once, the same way for every origin.</summary>
internal static class OriginPaths
{
    /// <summary>
    /// A path is "" (the root) or '/'-separated names with no leading or trailing '/', no empty,
    /// "." or ".." segments and no NUL. Anything else is a bug in the caller, not a missing file.
    /// </summary>
    public static void Validate(string path, bool allowRoot)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path.Length == 0)
        {
            if (!allowRoot)
                throw new ArgumentException("the root is not a file", nameof(path));
            return;
        }
        if (path[0] == '/' || path[^1] == '/' || path.Contains('\0', StringComparison.Ordinal)
            || path.Contains("//", StringComparison.Ordinal))
            throw new ArgumentException("path must be relative and '/'-separated without empty segments", nameof(path));
        foreach (var range in path.AsSpan().Split('/'))
        {
            var segment = path.AsSpan()[range];
            if (segment is "." or "..")
                throw new ArgumentException("path must not contain '.' or '..' segments", nameof(path));
        }
    }

    /// <summary>Joins a directory path and a child name.</summary>
    public static string Join(string directory, string name) => directory.Length == 0 ? name : directory + "/" + name;

    /// <summary>Validates a read request and returns the number of bytes it must produce.</summary>
    public static int ReadLength(OriginObject obj, long offset, int destinationLength)
    {
        ArgumentNullException.ThrowIfNull(obj);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (offset > obj.Size)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, "offset is past the end of the object");
        return (int)Math.Min(destinationLength, obj.Size - offset);
    }
}
