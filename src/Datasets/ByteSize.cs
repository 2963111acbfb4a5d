using System.Globalization;

namespace CsiCache.Datasets;

/// <summary>
/// Parses sizes as Kubernetes quantities and people write them: "10Gi", "512Mi", "1G", "1.5Ti",
/// "4096". Binary suffixes (Ki, Mi, Gi, Ti, Pi, Ei) are powers of 1024, decimal ones (k, K, M, G,
/// T, P, E) powers of 1000, as in Kubernetes; a trailing "B" is allowed ("512MiB", "1GB") since
/// people add it. Shared by the CLI and the node options so every size flag reads the same way.
/// </summary>
public static class ByteSize
{
    private const string Forms = "use bytes or a number with a suffix: Ki, Mi, Gi, Ti (powers of 1024) or k, M, G, T (powers of 1000), e.g. 512Mi or 10Gi";

    /// <summary>Parses a size in bytes; throws <see cref="FormatException"/> naming the accepted forms.</summary>
    public static long Parse(string text)
    {
        if (!TryParse(text, out long bytes, out string? error))
        {
            throw new FormatException(error);
        }
        return bytes;
    }

    /// <summary>Parses a size in bytes; false (with a reason) when <paramref name="text"/> is not one.</summary>
    public static bool TryParse(string? text, out long bytes, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        bytes = 0;
        string value = text?.Trim() ?? "";
        if (value.Length == 0)
        {
            error = "empty size; " + Forms;
            return false;
        }

        int numberEnd = 0;
        while (numberEnd < value.Length && (char.IsAsciiDigit(value[numberEnd]) || value[numberEnd] == '.'))
        {
            numberEnd++;
        }
        string number = value[..numberEnd];
        string suffix = value[numberEnd..].Trim();
        if (suffix.Length > 1 && (suffix[^1] == 'B' || suffix[^1] == 'b'))
        {
            suffix = suffix[..^1];
        }
        else if (suffix is "B" or "b")
        {
            suffix = "";
        }

        decimal multiplier = suffix switch
        {
            "" => 1m,
            "k" or "K" => 1e3m,
            "M" => 1e6m,
            "G" => 1e9m,
            "T" => 1e12m,
            "P" => 1e15m,
            "E" => 1e18m,
            "Ki" or "KI" => 1L << 10,
            "Mi" or "MI" => 1L << 20,
            "Gi" or "GI" => 1L << 30,
            "Ti" or "TI" => 1L << 40,
            "Pi" or "PI" => 1L << 50,
            "Ei" or "EI" => 1L << 60,
            _ => -1m,
        };
        if (number.Length == 0 || multiplier < 0
            || !decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal amount))
        {
            error = $"'{Shorten(value)}' is not a size; {Forms}";
            return false;
        }

        if (amount > long.MaxValue / multiplier)
        {
            error = $"'{Shorten(value)}' is too large";
            return false;
        }
        decimal total = decimal.Round(amount * multiplier, MidpointRounding.AwayFromZero);
        if (total > long.MaxValue)
        {
            error = $"'{Shorten(value)}' is too large";
            return false;
        }
        bytes = (long)total;
        error = null;
        return true;
    }

    /// <summary>A size for people: the largest binary unit that keeps it at or above 1 ("1.5 GiB").</summary>
    public static string Format(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        double value = bytes;
        int unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0
            ? bytes.ToString(CultureInfo.InvariantCulture) + " B"
            : value.ToString("0.##", CultureInfo.InvariantCulture) + " " + units[unit];
    }

    private static string Shorten(string s) => s.Length > 32 ? s[..32] + "…" : s;
}
