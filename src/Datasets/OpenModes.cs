namespace CsiCache.Datasets;

/// <summary>
/// Whether dataset mounts use FUSE_PASSTHROUGH (node-wide: <see cref="DatasetHost.Passthrough"/>,
/// from the environment variable CSICACHE_PASSTHROUGH). Passthrough needs OPEN (a backing file is
/// handed over per open), zero-message opens decline it, and the kernel holds a connection to one
/// or the other for its life; the setting says who chooses.
/// </summary>
internal enum PassthroughMode
{
    /// <summary>Never (<c>CSICACHE_PASSTHROUGH=0</c>): immutable mounts use zero-message opens where the kernel offers them.</summary>
    Off,

    /// <summary>
    /// The default: asked for at INIT, and where the kernel grants it and also offers zero-message
    /// opens, the first regular file opened chooses between them (see <see cref="DatasetFileSystem"/>).
    /// </summary>
    Auto,

    /// <summary>Whenever the kernel grants it (<c>CSICACHE_PASSTHROUGH=1</c>): OPEN is kept for every file.</summary>
    Always,
}

/// <summary>How a connection answers OPEN of regular files.</summary>
internal enum FileOpenMode
{
    /// <summary>Answered: a handle per open (READ-served, or passthrough for files the cache holds whole).</summary>
    Open,

    /// <summary>Answered ENOSYS: the kernel opens and closes files itself, reads come with handle 0.</summary>
    ZeroMessage,

    /// <summary>Not decided yet (passthrough <see cref="PassthroughMode.Auto"/>): the first regular-file OPEN decides.</summary>
    FirstOpenDecides,
}

internal static class PassthroughModes
{
    /// <summary>"0" is Off, "1" is Always, anything else (unset, empty) Auto.</summary>
    public static PassthroughMode Parse(string? value) => value switch
    {
        "0" => PassthroughMode.Off,
        "1" => PassthroughMode.Always,
        _ => PassthroughMode.Auto,
    };
}
