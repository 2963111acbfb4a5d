using System.Globalization;
using System.Text.RegularExpressions;
using CsiCache.Csi;

namespace CsiCache.Controller;

/// <summary>
/// Validates a dataset StorageClass's parameters once, at CreateVolume, and turns them into
/// the volume context the node will stage from. Errors name the parameter and never repeat a
/// URI's user info or query (where presigned tokens live).
/// </summary>
public static partial class DatasetParameters
{
    private static readonly HashSet<string> Known = new(StringComparer.Ordinal)
    {
        VolumeContextKeys.Source, VolumeContextKeys.SubPath, VolumeContextKeys.CacheMedium,
        VolumeContextKeys.Prefetch, VolumeContextKeys.Refresh, VolumeContextKeys.Endpoint,
        VolumeContextKeys.Region, VolumeContextKeys.PathStyle, VolumeContextKeys.Anonymous,
    };

    private static readonly string[] Schemes = ["s3", "http", "https", "file"];

    /// <summary>Returns the normalised volume context, or throws INVALID_ARGUMENT.</summary>
    public static Dictionary<string, string> ToVolumeContext(IReadOnlyDictionary<string, string> parameters)
    {
        foreach (var key in parameters.Keys)
        {
            if (!Known.Contains(key) && !key.StartsWith(VolumeContextKeys.KubernetesPrefix, StringComparison.Ordinal)
                && key != VolumeContextKeys.Kind)
            {
                throw CsiErrors.InvalidArgument(
                    $"unknown parameter '{key}'; dataset volumes take {string.Join(", ", Known.Order(StringComparer.Ordinal))}");
            }
        }

        var context = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [VolumeContextKeys.Kind] = "dataset",
        };

        var source = ValidateSource(parameters[VolumeContextKeys.Source]);
        context[VolumeContextKeys.Source] = source.OriginalString;

        if (Get(parameters, VolumeContextKeys.SubPath) is { } subPath)
        {
            context[VolumeContextKeys.SubPath] = NormaliseSubPath(subPath);
        }

        var medium = Get(parameters, VolumeContextKeys.CacheMedium) ?? "disk";
        if (medium is not ("disk" or "memory"))
        {
            throw CsiErrors.InvalidArgument($"parameter cacheMedium must be 'disk' or 'memory', not '{medium}'");
        }

        context[VolumeContextKeys.CacheMedium] = medium;

        if (Get(parameters, VolumeContextKeys.Prefetch) is { } prefetch)
        {
            if (prefetch.Any(char.IsControl))
            {
                throw CsiErrors.InvalidArgument("parameter prefetch must be none, metadata, all or a comma-separated list of globs");
            }

            context[VolumeContextKeys.Prefetch] = prefetch;
        }

        if (Get(parameters, VolumeContextKeys.Refresh) is { } refresh)
        {
            if (refresh != "never" && (!TryParseDuration(refresh, out var ttl) || ttl < TimeSpan.FromSeconds(1)))
            {
                throw CsiErrors.InvalidArgument(
                    $"parameter refresh must be 'never' or a duration of at least 1s such as 30s, 10m, 1h or 2d, not '{refresh}'");
            }

            context[VolumeContextKeys.Refresh] = refresh;
        }

        var isS3 = source.Scheme == "s3";
        foreach (var s3Only in new[]
        {
            VolumeContextKeys.Endpoint, VolumeContextKeys.Region, VolumeContextKeys.PathStyle, VolumeContextKeys.Anonymous,
        })
        {
            if (Get(parameters, s3Only) is not null && !isS3)
            {
                throw CsiErrors.InvalidArgument($"parameter {s3Only} applies only to s3:// sources");
            }
        }

        if (Get(parameters, VolumeContextKeys.Endpoint) is { } endpoint)
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var endpointUri)
                || endpointUri.Scheme is not ("http" or "https") || endpointUri.Host.Length == 0)
            {
                throw CsiErrors.InvalidArgument("parameter endpoint must be an http:// or https:// URL, e.g. https://minio.example:9000");
            }

            if (endpointUri.UserInfo.Length > 0)
            {
                throw CsiErrors.InvalidArgument(
                    "parameter endpoint must not contain credentials; put them in the node-stage secret (accessKeyId, secretAccessKey)");
            }

            context[VolumeContextKeys.Endpoint] = endpoint;
        }

        if (Get(parameters, VolumeContextKeys.Region) is { } region)
        {
            if (!RegionPattern().IsMatch(region))
            {
                throw CsiErrors.InvalidArgument($"parameter region '{region}' is not a region name such as us-east-1");
            }

            context[VolumeContextKeys.Region] = region;
        }

        if (Get(parameters, VolumeContextKeys.Anonymous) is { } anonymous)
        {
            if (!bool.TryParse(anonymous, out var isAnonymous))
            {
                throw CsiErrors.InvalidArgument($"parameter anonymous must be 'true' or 'false', not '{anonymous}'");
            }

            context[VolumeContextKeys.Anonymous] = isAnonymous ? "true" : "false";
        }

        if (Get(parameters, VolumeContextKeys.PathStyle) is { } pathStyle)
        {
            if (!bool.TryParse(pathStyle, out var style))
            {
                throw CsiErrors.InvalidArgument($"parameter pathStyle must be 'true' or 'false', not '{pathStyle}'");
            }

            context[VolumeContextKeys.PathStyle] = style ? "true" : "false";
        }

        return context;
    }

    /// <summary>Parses durations written the Kubernetes way (<c>90s</c>, <c>10m</c>, <c>1h30m</c>, <c>2d</c>) or as a TimeSpan.</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        var match = DurationPattern().Match(text);
        if (match.Success && text.Length > 0)
        {
            foreach (Capture capture in match.Groups["part"].Captures)
            {
                var value = capture.Value;
                var unit = value.TrimStart("0123456789".ToCharArray());
                var number = double.Parse(value[..^unit.Length], CultureInfo.InvariantCulture);
                duration += unit switch
                {
                    "ms" => TimeSpan.FromMilliseconds(number),
                    "s" => TimeSpan.FromSeconds(number),
                    "m" => TimeSpan.FromMinutes(number),
                    "h" => TimeSpan.FromHours(number),
                    _ => TimeSpan.FromDays(number),
                };
            }

            return true;
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out duration) && duration >= TimeSpan.Zero;
    }

    private static Uri ValidateSource(string source)
    {
        if (string.IsNullOrWhiteSpace(source))
        {
            throw CsiErrors.InvalidArgument("parameter source is empty; give s3://bucket/prefix/, https://host/dir/ or file:///path");
        }

        if (!Uri.TryCreate(source, UriKind.Absolute, out var uri))
        {
            throw CsiErrors.InvalidArgument("parameter source is not an absolute URI; give s3://bucket/prefix/, https://host/dir/ or file:///path");
        }

        if (uri.UserInfo.Length > 0)
        {
            // Deliberately not echoing the URI: it holds a credential.
            throw CsiErrors.InvalidArgument(
                "parameter source must not contain credentials; put them in the node-stage secret (accessKeyId, secretAccessKey)");
        }

        var shown = $"{uri.Scheme}://{uri.Host}{uri.AbsolutePath}";
        if (uri.Query.Length > 0 || uri.Fragment.Length > 0)
        {
            throw CsiErrors.InvalidArgument(
                $"parameter source {shown} must not carry a query or fragment (presigned tokens do not belong in a volume definition)");
        }

        if (Array.IndexOf(Schemes, uri.Scheme) < 0)
        {
            throw CsiErrors.InvalidArgument($"parameter source scheme '{uri.Scheme}' is not supported; use s3, http, https or file");
        }

        if (uri.Segments.Any(s => s.TrimEnd('/') == ".."))
        {
            throw CsiErrors.InvalidArgument($"parameter source {shown} must not contain '..'");
        }

        switch (uri.Scheme)
        {
            case "s3" when !BucketPattern().IsMatch(uri.Host):
                throw CsiErrors.InvalidArgument($"parameter source {shown}: '{uri.Host}' is not a valid S3 bucket name");
            case "http" or "https" when uri.Host.Length == 0:
                throw CsiErrors.InvalidArgument($"parameter source {shown} has no host");
            case "file" when uri.Host.Length > 0 && uri.Host != "localhost":
                throw CsiErrors.InvalidArgument($"parameter source {shown}: file:// sources are paths on the node (file:///abs/path), not hosts");
        }

        if (source.Contains("/../", StringComparison.Ordinal) || source.EndsWith("/..", StringComparison.Ordinal))
        {
            throw CsiErrors.InvalidArgument($"parameter source {shown} must not contain '..'");
        }

        return uri;
    }

    private static string NormaliseSubPath(string subPath)
    {
        var parts = subPath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (subPath.StartsWith('/') || parts.Any(p => p is ".." or "."))
        {
            throw CsiErrors.InvalidArgument($"parameter subPath '{subPath}' must be a relative path inside the dataset, without '.' or '..'");
        }

        if (parts.Any(p => p.Any(char.IsControl)))
        {
            throw CsiErrors.InvalidArgument("parameter subPath contains control characters");
        }

        return string.Join('/', parts);
    }

    private static string? Get(IReadOnlyDictionary<string, string> parameters, string key) =>
        parameters.TryGetValue(key, out var value) && value.Length > 0 ? value : null;

    [GeneratedRegex("^(?<part>[0-9]+(ms|s|m|h|d))+$")]
    private static partial Regex DurationPattern();

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    private static partial Regex BucketPattern();

    [GeneratedRegex("^[a-z0-9-]{2,32}$")]
    private static partial Regex RegionPattern();
}
