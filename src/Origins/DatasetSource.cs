using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace CsiCache.Origins;

/// <summary>The kind of origin a dataset source names.</summary>
public enum OriginKind
{
    Posix,
    Http,
    S3,
}

/// <summary>Where an S3 dataset lives: bucket, key prefix and how to reach the endpoint.</summary>
/// <param name="Bucket">Bucket name.</param>
/// <param name="Prefix">Key prefix of the dataset root: "" or ending in '/'.</param>
/// <param name="Endpoint">S3-compatible endpoint (http/https), or null for AWS.</param>
/// <param name="Region">Signing region (default us-east-1).</param>
/// <param name="PathStyle">Address the bucket in the path (MinIO, s3rver) rather than the host name.</param>
/// <param name="Anonymous">Send unsigned requests (public buckets); only with parameter <c>anonymous=true</c>.</param>
public sealed record S3Location(string Bucket, string Prefix, Uri? Endpoint, string Region, bool PathStyle, bool Anonymous);

/// <summary>
/// A parsed and validated dataset source. Build one with <see cref="Parse"/>; everything in it is
/// credential-free (userinfo and query strings are refused), so it can be logged and stored in a PV.
/// </summary>
public sealed partial record DatasetSource
{
    /// <summary>CSI parameter names this type reads (the dataset layer owns the others).</summary>
    public const string SubPathParameter = "subPath";
    public const string EndpointParameter = "endpoint";
    public const string RegionParameter = "region";
    public const string PathStyleParameter = "pathStyle";
    public const string AnonymousParameter = "anonymous";

    /// <summary>AWS's default region; S3-compatible stores accept any, and sign with this one.</summary>
    public const string DefaultRegion = "us-east-1";

    private DatasetSource(OriginKind kind, string identity)
    {
        Kind = kind;
        Identity = identity;
    }

    public OriginKind Kind { get; }

    /// <summary>Normalised, credential-free URI of the root (subPath applied); see <see cref="IOrigin.Identity"/>.</summary>
    public string Identity { get; }

    /// <summary>The validated subPath ("" when none), already applied to the root.</summary>
    public string SubPath { get; private init; } = "";

    /// <summary>POSIX: absolute path of the root directory, without a trailing '/' (except "/").</summary>
    public string? PosixRoot { get; private init; }

    /// <summary>HTTP(S): URI of the root directory, ending in '/'.</summary>
    public Uri? HttpRoot { get; private init; }

    /// <summary>HTTP(S) single-file source: the file's name in <see cref="HttpRoot"/>; the root then lists only it.</summary>
    public string? SingleFileName { get; private init; }

    /// <summary>S3: bucket, prefix and endpoint settings.</summary>
    public S3Location? S3 { get; private init; }

    /// <summary>
    /// Parses <paramref name="uri"/> (the <c>source</c> parameter) with the dataset's parameters.
    /// Unknown parameters are ignored (other layers own them); S3 parameters on a non-S3 source are refused.
    /// </summary>
    /// <exception cref="OriginInvalidSourceException">with a message that names the parameter and never echoes a secret.</exception>
    public static DatasetSource Parse(string uri, IReadOnlyDictionary<string, string> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (string.IsNullOrWhiteSpace(uri))
            throw Invalid("parameter 'source' is required (s3://bucket/prefix/, https://host/dir/ or file:///abs/path)");
        uri = uri.Trim();
        if (uri.Contains('\0', StringComparison.Ordinal) || uri.Any(char.IsControl))
            throw Invalid("parameter 'source' contains control characters");

        int schemeEnd = uri.IndexOf("://", StringComparison.Ordinal);
        if (schemeEnd <= 0)
            throw Invalid("parameter 'source' must be an absolute URI: s3://bucket/prefix/, https://host/dir/ or file:///abs/path");
        string scheme = uri[..schemeEnd].ToLowerInvariant();

        // The authority is everything up to the next '/'; a '@' there is userinfo. Checked on the raw
        // string, before any parsing, so the message can never include what was typed.
        string rest = uri[(schemeEnd + 3)..];
        int authorityEnd = rest.IndexOfAny(['/', '?', '#']);
        string authority = authorityEnd < 0 ? rest : rest[..authorityEnd];
        if (authority.Contains('@', StringComparison.Ordinal))
            throw Invalid("parameter 'source' must not contain credentials (user:password@); put them in the CSI node-stage secret");

        string subPath = ParseSubPath(parameters);
        bool s3Params = parameters.ContainsKey(EndpointParameter) || parameters.ContainsKey(RegionParameter)
            || parameters.ContainsKey(PathStyleParameter) || parameters.ContainsKey(AnonymousParameter);
        if (scheme != "s3" && s3Params)
        {
            string which = new[] { EndpointParameter, RegionParameter, PathStyleParameter, AnonymousParameter }.First(parameters.ContainsKey);
            throw Invalid($"parameter '{which}' applies only to s3:// sources");
        }

        return scheme switch
        {
            "s3" => ParseS3(rest, subPath, parameters),
            "http" or "https" => ParseHttp(scheme, uri, rest, subPath),
            "file" => ParsePosix(rest, subPath),
            _ => throw Invalid($"parameter 'source' has unsupported scheme '{Printable(scheme)}'; use s3, http, https or file"),
        };
    }

    private static DatasetSource ParseS3(string rest, string subPath, IReadOnlyDictionary<string, string> parameters)
    {
        if (rest.IndexOfAny(['?', '#']) >= 0)
            throw Invalid("parameter 'source' must not contain '?' or '#' for s3:// sources");
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        string bucket = slash < 0 ? rest : rest[..slash];
        string prefix = slash < 0 ? "" : rest[(slash + 1)..];
        if (!BucketName().IsMatch(bucket))
            throw Invalid("parameter 'source' has an invalid S3 bucket name (3-63 characters: lowercase letters, digits, '.', '-')");
        // S3 keys in s3:// URIs are literal (as in the AWS CLI), not percent-encoded.
        CheckSegments(prefix.TrimEnd('/'), "source", allowEmpty: true);
        prefix = JoinPrefix(prefix, subPath);

        Uri? endpoint = null;
        if (parameters.TryGetValue(EndpointParameter, out string? ep) && !string.IsNullOrWhiteSpace(ep))
        {
            if (!Uri.TryCreate(ep.Trim(), UriKind.Absolute, out endpoint) || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
                throw Invalid("parameter 'endpoint' must be an http:// or https:// URL, e.g. https://minio.example:9000");
            if (endpoint.UserInfo.Length > 0)
                throw Invalid("parameter 'endpoint' must not contain credentials; put them in the CSI node-stage secret");
            if (endpoint.Query.Length > 0 || endpoint.Fragment.Length > 0)
                throw Invalid("parameter 'endpoint' must not contain a query or fragment");
        }

        string region = DefaultRegion;
        if (parameters.TryGetValue(RegionParameter, out string? r) && !string.IsNullOrWhiteSpace(r))
        {
            region = r.Trim();
            if (!RegionName().IsMatch(region))
                throw Invalid("parameter 'region' must look like us-east-1 (lowercase letters, digits, '-')");
        }

        // S3-compatible stores (MinIO, Ceph, s3rver) are usually reached by IP or a name without
        // wildcard DNS, so path-style is the useful default once an endpoint is given; AWS itself
        // deprecates path-style, so it stays off there.
        bool pathStyle = ParseBool(parameters, PathStyleParameter, endpoint is not null);
        bool anonymous = ParseBool(parameters, AnonymousParameter, false);

        string identity = $"s3://{bucket}/{prefix}";
        if (endpoint is not null)
            identity += "?endpoint=" + Uri.EscapeDataString(NormaliseEndpoint(endpoint));
        return new DatasetSource(OriginKind.S3, identity)
        {
            SubPath = subPath,
            S3 = new S3Location(bucket, prefix, endpoint, region, pathStyle, anonymous),
        };
    }

    private static DatasetSource ParseHttp(string scheme, string uri, string rest, string subPath)
    {
        if (rest.Contains('?', StringComparison.Ordinal))
            throw Invalid("parameter 'source' must not contain a query string (it often carries a signature); use the CSI node-stage secret for credentials");
        if (rest.Contains('#', StringComparison.Ordinal))
            throw Invalid("parameter 'source' must not contain a fragment ('#'); percent-encode '#' in names as %23");
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        string rawPath = slash < 0 ? "/" : rest[slash..];
        // Check dot segments on the raw text: System.Uri would silently resolve "/a/../b" to "/b".
        CheckSegments(rawPath.Trim('/'), "source", allowEmpty: true, decode: true);
        if (!Uri.TryCreate(uri, UriKind.Absolute, out Uri? parsed) || parsed.Host.Length == 0)
            throw Invalid($"parameter 'source' is not a valid {scheme}:// URL");

        string path = parsed.AbsolutePath;
        string? singleFile = null;
        if (!path.EndsWith('/'))
        {
            // No trailing '/': a single file. Its root is the parent directory, listing only it.
            int last = path.LastIndexOf('/');
            singleFile = Uri.UnescapeDataString(path[(last + 1)..]);
            path = path[..(last + 1)];
            if (subPath.Length > 0)
                throw Invalid("parameter 'subPath' applies only to directory sources (a URL ending in '/')");
        }
        foreach (string segment in subPath.Split('/', StringSplitOptions.RemoveEmptyEntries))
            path += Uri.EscapeDataString(segment) + "/";

        var root = new UriBuilder(parsed.Scheme, parsed.Host, parsed.Port, path).Uri;
        return new DatasetSource(OriginKind.Http, root.AbsoluteUri)
        {
            SubPath = subPath,
            HttpRoot = root,
            SingleFileName = singleFile,
        };
    }

    private static DatasetSource ParsePosix(string rest, string subPath)
    {
        if (rest.IndexOfAny(['?', '#']) >= 0)
            throw Invalid("parameter 'source' must not contain '?' or '#' for file:// sources; percent-encode them");
        // file:///abs/path has an empty authority; file://localhost/abs/path is the same thing.
        string rawPath;
        if (rest.StartsWith('/'))
            rawPath = rest;
        else if (rest.StartsWith("localhost/", StringComparison.OrdinalIgnoreCase))
            rawPath = rest["localhost".Length..];
        else
            throw Invalid("parameter 'source' must be file:///absolute/path (a path on the node, such as an NFS mount)");
        CheckSegments(rawPath.Trim('/'), "source", allowEmpty: true, decode: true);
        string path = Uri.UnescapeDataString(rawPath);
        if (path.Contains('\0', StringComparison.Ordinal))
            throw Invalid("parameter 'source' contains a NUL character");
        path = "/" + string.Join('/', path.Split('/', StringSplitOptions.RemoveEmptyEntries));
        if (subPath.Length > 0)
            path = path == "/" ? "/" + subPath : path + "/" + subPath;

        string identity = "file://" + string.Join('/', path.Split('/').Select(Uri.EscapeDataString)) + (path == "/" ? "" : "/");
        return new DatasetSource(OriginKind.Posix, identity) { SubPath = subPath, PosixRoot = path };
    }

    private static string ParseSubPath(IReadOnlyDictionary<string, string> parameters)
    {
        if (!parameters.TryGetValue(SubPathParameter, out string? subPath) || string.IsNullOrEmpty(subPath))
            return "";
        if (subPath.StartsWith('/'))
            throw Invalid("parameter 'subPath' must be relative (no leading '/')");
        if (subPath.Contains('\0', StringComparison.Ordinal))
            throw Invalid("parameter 'subPath' contains a NUL character");
        subPath = subPath.TrimEnd('/');
        CheckSegments(subPath, SubPathParameter, allowEmpty: false);
        return subPath;
    }

    /// <summary>Refuses "." and ".." segments (and empty ones unless allowed), so a source can never climb out of its root.</summary>
    private static void CheckSegments(string path, string parameter, bool allowEmpty, bool decode = false)
    {
        if (path.Length == 0)
            return;
        foreach (string raw in path.Split('/'))
        {
            string segment = decode ? Uri.UnescapeDataString(raw) : raw;
            if (segment is "." or "..")
                throw Invalid($"parameter '{parameter}' must not contain '.' or '..' segments");
            if (segment.Length == 0 && !allowEmpty)
                throw Invalid($"parameter '{parameter}' must not contain empty segments ('//')");
            if (decode && segment.Contains('/', StringComparison.Ordinal))
                throw Invalid($"parameter '{parameter}' must not contain an encoded '/' (%2F)");
        }
    }

    private static string JoinPrefix(string prefix, string subPath)
    {
        if (prefix.Length > 0 && !prefix.EndsWith('/'))
            prefix += "/";
        if (subPath.Length > 0)
            prefix += subPath + "/";
        return prefix;
    }

    private static bool ParseBool(IReadOnlyDictionary<string, string> parameters, string name, bool defaultValue)
    {
        if (!parameters.TryGetValue(name, out string? value) || string.IsNullOrWhiteSpace(value))
            return defaultValue;
        return value.Trim().ToLowerInvariant() switch
        {
            "true" => true,
            "false" => false,
            _ => throw Invalid($"parameter '{name}' must be \"true\" or \"false\""),
        };
    }

    private static string NormaliseEndpoint(Uri endpoint)
    {
        var sb = new StringBuilder();
        sb.Append(endpoint.Scheme).Append("://").Append(endpoint.IdnHost.ToLowerInvariant());
        if (!endpoint.IsDefaultPort)
            sb.Append(':').Append(endpoint.Port.ToString(CultureInfo.InvariantCulture));
        sb.Append(endpoint.AbsolutePath.TrimEnd('/'));
        return sb.ToString();
    }

    private static string Printable(string s) => s.Length > 16 ? s[..16] + "…" : s;

    private static OriginInvalidSourceException Invalid(string message) => new(message);

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    private static partial Regex BucketName();

    [GeneratedRegex("^[a-z0-9-]{1,32}$")]
    private static partial Regex RegionName();
}
