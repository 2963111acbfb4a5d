namespace CsiCache.Fuse;

/// <summary>
/// A Linux errno as a value: <see cref="Ok"/> (0) for success, otherwise the positive error number.
/// Returned by every <see cref="IFuseFileSystem"/> call so that expected misses (ENOENT, EROFS…)
/// never cost an exception on the hot path. The dispatcher negates it into <c>fuse_out_header.error</c>.
/// </summary>
/// <remarks>Numbers are the Linux generic ones (x86-64 and arm64 agree on all of these).</remarks>
public readonly record struct Errno(int Value)
{
    public bool IsOk => Value == 0;

    public static Errno Ok => default;
    public static Errno EPERM => new(1);
    public static Errno ENOENT => new(2);
    public static Errno EINTR => new(4);
    public static Errno EIO => new(5);
    public static Errno EBADF => new(9);
    public static Errno EAGAIN => new(11);
    public static Errno ENOMEM => new(12);
    public static Errno EACCES => new(13);
    public static Errno EBUSY => new(16);
    public static Errno EEXIST => new(17);
    public static Errno ENODEV => new(19);
    public static Errno ENOTDIR => new(20);
    public static Errno EISDIR => new(21);
    public static Errno EINVAL => new(22);
    public static Errno ENOSPC => new(28);
    public static Errno EROFS => new(30);
    public static Errno ERANGE => new(34);
    public static Errno ENAMETOOLONG => new(36);
    public static Errno ENOSYS => new(38);
    public static Errno ENOTEMPTY => new(39);
    public static Errno ENODATA => new(61);
    public static Errno EPROTO => new(71);
    public static Errno EOVERFLOW => new(75);
    /// <summary>ENOTSUP and EOPNOTSUPP are the same number on Linux.</summary>
    public static Errno EOPNOTSUPP => new(95);
    public static Errno ENOTSUP => new(95);
    public static Errno ENOTCONN => new(107);
    public static Errno ETIMEDOUT => new(110);
    public static Errno ESTALE => new(116);

    public override string ToString() => Value switch
    {
        0 => "OK",
        2 => "ENOENT",
        5 => "EIO",
        13 => "EACCES",
        30 => "EROFS",
        38 => "ENOSYS",
        116 => "ESTALE",
        _ => "errno " + Value.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
