using System.Globalization;
using CsiCache.Origins;

namespace CsiCache.Datasets;

/// <summary>Which cache a mount's chunks go to.</summary>
internal enum CacheMediumChoice
{
    Disk,
    Memory,
}

/// <summary>What to fetch in the background once mounted.</summary>
internal enum PrefetchMode
{
    /// <summary>Nothing beyond sequential read-ahead (the default).</summary>
    None,

    /// <summary>Walk every directory listing, so the first <c>ls -R</c> or os.walk finds it in memory.</summary>
    Metadata,

    /// <summary>Walk the tree and fetch every file's chunks.</summary>
    All,

    /// <summary>Walk the tree and fetch the files whose path matches one of the globs.</summary>
    Globs,
}

/// <summary>
/// The dataset layer's own volume parameters, parsed and checked once (the origin's are parsed by
/// <see cref="DatasetSource.Parse"/>). Errors name the parameter, as CSI InvalidArgument messages should.
/// </summary>
internal sealed record DatasetParameters
{
    public const string CacheMediumKey = "cacheMedium";
    public const string PrefetchKey = "prefetch";
    public const string RefreshKey = "refresh";

    /// <summary>The shortest refresh accepted: shorter would turn every stat into an origin round trip.</summary>
    public static readonly TimeSpan MinimumRefresh = TimeSpan.FromSeconds(1);

    public CacheMediumChoice CacheMedium { get; init; } = CacheMediumChoice.Disk;

    public PrefetchMode Prefetch { get; init; } = PrefetchMode.None;

    /// <summary>For <see cref="PrefetchMode.Globs"/>: the patterns, '/'-separated, relative to the dataset root.</summary>
    public IReadOnlyList<string> PrefetchGlobs { get; init; } = [];

    /// <summary>Revalidate metadata after this long; null: the dataset is immutable while mounted.</summary>
    public TimeSpan? Refresh { get; init; }

    /// <exception cref="DatasetException">with <see cref="DatasetErrorKind.InvalidSource"/>, naming the parameter.</exception>
    public static DatasetParameters Parse(IReadOnlyDictionary<string, string> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var result = new DatasetParameters();

        if (parameters.TryGetValue(CacheMediumKey, out string? medium) && !string.IsNullOrWhiteSpace(medium))
        {
            result = result with
            {
                CacheMedium = medium.Trim().ToLowerInvariant() switch
                {
                    "disk" => CacheMediumChoice.Disk,
                    "memory" => CacheMediumChoice.Memory,
                    _ => throw Invalid($"parameter '{CacheMediumKey}' must be \"disk\" or \"memory\""),
                },
            };
        }

        if (parameters.TryGetValue(PrefetchKey, out string? prefetch) && !string.IsNullOrWhiteSpace(prefetch))
        {
            string p = prefetch.Trim();
            result = p.ToLowerInvariant() switch
            {
                "none" or "false" => result with { Prefetch = PrefetchMode.None },
                "metadata" => result with { Prefetch = PrefetchMode.Metadata },
                "all" or "true" => result with { Prefetch = PrefetchMode.All },
                _ => result with { Prefetch = PrefetchMode.Globs, PrefetchGlobs = ParseGlobs(p) },
            };
        }

        if (parameters.TryGetValue(RefreshKey, out string? refresh) && !string.IsNullOrWhiteSpace(refresh))
        {
            string r = refresh.Trim();
            if (r.Equals("never", StringComparison.OrdinalIgnoreCase) || r == "0")
            {
                result = result with { Refresh = null };
            }
            else if (TryParseDuration(r, out TimeSpan ttl) && ttl >= MinimumRefresh)
            {
                result = result with { Refresh = ttl };
            }
            else
            {
                throw Invalid($"parameter '{RefreshKey}' must be a duration of at least 1s such as 30s, 10m, 1h or 1h30m (or \"never\")");
            }
        }
        return result;
    }

    /// <summary>Go-style durations ("300ms", "30s", "10m", "1h30m", "2d"): what Kubernetes users write.</summary>
    internal static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        int i = 0;
        bool any = false;
        while (i < text.Length)
        {
            int start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.'))
            {
                i++;
            }
            if (start == i || !double.TryParse(text.AsSpan(start, i - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double value))
            {
                return false;
            }
            int unitStart = i;
            while (i < text.Length && char.IsAsciiLetter(text[i]))
            {
                i++;
            }
            double seconds = text[unitStart..i] switch
            {
                "ms" => value / 1000,
                "s" => value,
                "m" => value * 60,
                "h" => value * 3600,
                "d" => value * 86400,
                _ => double.NaN,
            };
            if (double.IsNaN(seconds) || seconds > TimeSpan.MaxValue.TotalSeconds / 2)
            {
                return false;
            }
            duration += TimeSpan.FromSeconds(seconds);
            any = true;
        }
        return any;
    }

    private static string[] ParseGlobs(string text)
    {
        string[] globs = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (string glob in globs)
        {
            if (glob.StartsWith('/') || glob.Split('/').Any(s => s is "." or ".." || s.Length == 0))
            {
                throw Invalid($"parameter '{PrefetchKey}' must be none, metadata, all, or comma-separated relative globs such as train/*.tar,**/*.json");
            }
        }
        return globs;
    }

    private static DatasetException Invalid(string message) => new(DatasetErrorKind.InvalidSource, message);
}
