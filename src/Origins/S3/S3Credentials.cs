using Amazon.Runtime;

namespace CsiCache.Origins.S3;

/// <summary>
/// S3 credentials from the CSI secrets (<c>accessKeyId</c>, <c>secretAccessKey</c>, optional
/// <c>sessionToken</c>); otherwise anonymous when the source says <c>anonymous=true</c>; otherwise
/// null, meaning the SDK's default chain (environment, IRSA web identity, instance profile).
/// </summary>
internal sealed class S3Credentials
{
    public const string AccessKeyIdKey = "accessKeyId";
    public const string SecretAccessKeyKey = "secretAccessKey";
    public const string SessionTokenKey = "sessionToken";

    private S3Credentials(AWSCredentials? credentials, bool anonymous)
    {
        Credentials = credentials;
        Anonymous = anonymous;
    }

    /// <summary>Explicit credentials, or null for the SDK default chain.</summary>
    public AWSCredentials? Credentials { get; }

    public bool Anonymous { get; }

    public static S3Credentials FromSecrets(IReadOnlyDictionary<string, string> secrets, bool anonymous)
    {
        secrets.TryGetValue(AccessKeyIdKey, out string? keyId);
        secrets.TryGetValue(SecretAccessKeyKey, out string? secret);
        secrets.TryGetValue(SessionTokenKey, out string? session);
        bool any = !string.IsNullOrEmpty(keyId) || !string.IsNullOrEmpty(secret) || !string.IsNullOrEmpty(session);
        if (any && anonymous)
            throw new OriginInvalidSourceException($"parameter 'anonymous' is \"true\" but secret '{AccessKeyIdKey}' is given; remove one");
        if (anonymous)
            return new S3Credentials(new AnonymousAWSCredentials(), anonymous: true);
        if (!any)
            return new S3Credentials(null, anonymous: false);
        if (string.IsNullOrEmpty(keyId))
            throw new OriginInvalidSourceException($"secret '{AccessKeyIdKey}' is required when '{SecretAccessKeyKey}' or '{SessionTokenKey}' is given");
        if (string.IsNullOrEmpty(secret))
            throw new OriginInvalidSourceException($"secret '{SecretAccessKeyKey}' is required when '{AccessKeyIdKey}' is given");
        AWSCredentials creds = string.IsNullOrEmpty(session)
            ? new BasicAWSCredentials(keyId, secret)
            : new SessionAWSCredentials(keyId, secret, session);
        return new S3Credentials(creds, anonymous: false);
    }

    public override string ToString() => Anonymous ? "anonymous" : Credentials is null ? "default chain" : "secret (redacted)";
}
