using System.Net.Http.Headers;
using System.Text;

namespace CsiCache.Origins.Http;

/// <summary>HTTP credentials from the CSI secrets: <c>username</c> + <c>password</c> (Basic) or <c>bearerToken</c>.</summary>
internal sealed class HttpCredentials
{
    public const string UsernameKey = "username";
    public const string PasswordKey = "password";
    public const string BearerTokenKey = "bearerToken";

    private HttpCredentials(AuthenticationHeaderValue? header) => Authorization = header;

    /// <summary>The Authorization header to send, or null. Never logged, never in a message.</summary>
    public AuthenticationHeaderValue? Authorization { get; }

    public static HttpCredentials FromSecrets(IReadOnlyDictionary<string, string> secrets)
    {
        secrets.TryGetValue(UsernameKey, out string? user);
        secrets.TryGetValue(PasswordKey, out string? password);
        secrets.TryGetValue(BearerTokenKey, out string? bearer);
        bool hasBasic = !string.IsNullOrEmpty(user) || !string.IsNullOrEmpty(password);
        if (hasBasic && !string.IsNullOrEmpty(bearer))
            throw new OriginInvalidSourceException($"secrets '{UsernameKey}'/'{PasswordKey}' and '{BearerTokenKey}' are exclusive; give one");
        if (hasBasic)
        {
            if (string.IsNullOrEmpty(user))
                throw new OriginInvalidSourceException($"secret '{UsernameKey}' is required when '{PasswordKey}' is given");
            if (user.Contains(':', StringComparison.Ordinal))
                throw new OriginInvalidSourceException($"secret '{UsernameKey}' must not contain ':' (HTTP Basic)");
            string token = Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + (password ?? "")));
            return new HttpCredentials(new AuthenticationHeaderValue("Basic", token));
        }
        if (!string.IsNullOrEmpty(bearer))
            return new HttpCredentials(new AuthenticationHeaderValue("Bearer", bearer));
        return new HttpCredentials(null);
    }

    public override string ToString() => Authorization is null ? "none" : Authorization.Scheme + " (redacted)";
}
