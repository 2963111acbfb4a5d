using CsiCache.Origins.Http;
using CsiCache.Origins.Posix;
using CsiCache.Origins.S3;

namespace CsiCache.Origins;

/// <summary>Creates the origin for a parsed <see cref="DatasetSource"/>.</summary>
public static class OriginFactory
{
    /// <summary>
    /// Creates the origin. <paramref name="secrets"/> are the CSI secrets: S3 <c>accessKeyId</c>,
    /// <c>secretAccessKey</c>, optional <c>sessionToken</c>; HTTP <c>username</c> + <c>password</c>
    /// (Basic) or <c>bearerToken</c>. No network I/O happens here.
    /// </summary>
    /// <exception cref="OriginInvalidSourceException">secrets are incomplete or conflict with the parameters.</exception>
    public static IOrigin Create(DatasetSource source, IReadOnlyDictionary<string, string>? secrets, OriginOptions options)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        secrets ??= new Dictionary<string, string>();
        return source.Kind switch
        {
            OriginKind.Posix => new PosixOrigin(source, options),
            OriginKind.Http => new HttpOrigin(source, HttpCredentials.FromSecrets(secrets), options),
            OriginKind.S3 => new S3Origin(source, S3Credentials.FromSecrets(secrets, source.S3!.Anonymous), options),
            _ => throw new OriginInvalidSourceException("unsupported origin kind " + source.Kind),
        };
    }
}
