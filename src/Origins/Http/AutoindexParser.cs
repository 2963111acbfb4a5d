using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace CsiCache.Origins.Http;

/// <summary>
/// Turns a web server's directory listing into entries: nginx <c>autoindex</c> HTML,
/// nginx <c>autoindex_format json</c>, and Apache mod_autoindex (pre, table and <c>?F=0</c> list
/// layouts). The rule for HTML is the one a browser user would apply: an entry is a link that
/// resolves to a direct child of the listed directory; parent links, sort links (<c>?C=N;O=D</c>),
/// absolute links elsewhere and external links are ignored. Sizes are taken only when the listing
/// prints exact bytes (nginx's default); Apache's "1.2M" is rounded and so reported as unknown (-1),
/// which makes a stat do a HEAD rather than trust a wrong size.
/// </summary>
internal static partial class AutoindexParser
{
    /// <summary>Parses a listing body fetched from <paramref name="pageUri"/> (the final URI, after redirects).</summary>
    public static List<OriginEntry> Parse(string body, string? mediaType, Uri pageUri)
    {
        ArgumentNullException.ThrowIfNull(body);
        string trimmed = body.TrimStart();
        bool json = (mediaType is not null && mediaType.Contains("json", StringComparison.OrdinalIgnoreCase))
            || trimmed.StartsWith('[');
        return json ? ParseNginxJson(trimmed) : ParseHtml(body, pageUri);
    }

    /// <summary>nginx <c>autoindex_format json</c>: <c>[{"name":..,"type":"file|directory|other","mtime":"RFC1123","size":N}]</c>.</summary>
    public static List<OriginEntry> ParseNginxJson(string body)
    {
        var entries = new List<OriginEntry>();
        using var doc = JsonDocument.Parse(body);
        if (doc.RootElement.ValueKind != JsonValueKind.Array)
            throw new FormatException("JSON listing is not an array");
        foreach (var item in doc.RootElement.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("name", out var nameEl) || nameEl.ValueKind != JsonValueKind.String)
                continue;
            string name = nameEl.GetString()!;
            if (!IsPlainName(name))
                continue;
            string type = item.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "file";
            OriginEntryKind kind;
            if (type == "directory")
                kind = OriginEntryKind.Directory;
            else if (type == "file")
                kind = OriginEntryKind.File;
            else
                continue; // "other": sockets, devices; nothing to read
            long size = kind == OriginEntryKind.Directory ? 0 : -1;
            if (kind == OriginEntryKind.File && item.TryGetProperty("size", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out long sz) && sz >= 0)
                size = sz;
            DateTimeOffset? modified = null;
            if (item.TryGetProperty("mtime", out var m) && m.ValueKind == JsonValueKind.String
                && DateTimeOffset.TryParseExact(m.GetString(), "r", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var mt))
                modified = mt;
            entries.Add(new OriginEntry(name, kind, size, modified, null));
        }
        return entries;
    }

    /// <summary>nginx and Apache HTML listings: every link that is a direct child, plus the date and size printed after it.</summary>
    public static List<OriginEntry> ParseHtml(string body, Uri pageUri)
    {
        var entries = new List<OriginEntry>();
        string pagePath = pageUri.AbsolutePath.EndsWith('/') ? pageUri.AbsolutePath : pageUri.AbsolutePath + "/";
        var matches = Anchor().Matches(body);
        for (int i = 0; i < matches.Count; i++)
        {
            Match m = matches[i];
            string href = WebUtility.HtmlDecode(m.Groups["dq"].Success ? m.Groups["dq"].Value
                : m.Groups["sq"].Success ? m.Groups["sq"].Value : m.Groups["bare"].Value).Trim();
            if (!TryChildName(href, pageUri, pagePath, out string? name, out bool isDirectory))
                continue;

            // What the server prints after the link, up to the end of its line (pre layouts) or
            // its table row (Apache HTMLTable): date and size live there.
            int tailStart = m.Index + m.Length;
            int tailEnd = i + 1 < matches.Count ? matches[i + 1].Index : body.Length;
            string tail = body[tailStart..tailEnd];
            int cut = tail.IndexOf('\n', StringComparison.Ordinal);
            int rowEnd = tail.IndexOf("</tr", StringComparison.OrdinalIgnoreCase);
            if (rowEnd >= 0 && (cut < 0 || rowEnd < cut))
                cut = rowEnd;
            if (cut >= 0)
                tail = tail[..cut];
            tail = WebUtility.HtmlDecode(Tag().Replace(tail, " "));

            DateTimeOffset? modified = null;
            long size = isDirectory ? 0 : -1;
            var dm = DateAndSize().Match(tail);
            if (dm.Success)
            {
                modified = ParseListingDate(dm.Groups["date"].Value);
                string sizeText = dm.Groups["size"].Value;
                if (!isDirectory && sizeText.Length > 0 && sizeText.All(char.IsAsciiDigit)
                    && long.TryParse(sizeText, NumberStyles.None, CultureInfo.InvariantCulture, out long exact))
                    size = exact;
            }
            entries.Add(new OriginEntry(name!, isDirectory ? OriginEntryKind.Directory : OriginEntryKind.File, size, modified, null));
        }
        return entries;
    }

    /// <summary>
    /// Resolves a link against the page and accepts it only if it names a direct child of the
    /// page's directory on the same server, with no query or fragment.
    /// </summary>
    internal static bool TryChildName(string href, Uri pageUri, string pagePath, out string? name, out bool isDirectory)
    {
        name = null;
        isDirectory = false;
        if (href.Length == 0 || href[0] == '?' || href[0] == '#')
            return false;
        if (!Uri.TryCreate(pageUri, href, out Uri? target))
            return false;
        if (target.Scheme != pageUri.Scheme || !string.Equals(target.Authority, pageUri.Authority, StringComparison.OrdinalIgnoreCase)
            || target.Query.Length > 0 || target.Fragment.Length > 0)
            return false;
        string path = target.AbsolutePath;
        if (!path.StartsWith(pagePath, StringComparison.Ordinal) || path.Length == pagePath.Length)
            return false;
        string rest = path[pagePath.Length..];
        if (rest.EndsWith('/'))
        {
            isDirectory = true;
            rest = rest[..^1];
        }
        if (rest.Contains('/', StringComparison.Ordinal))
            return false; // deeper than a child
        string decoded = Uri.UnescapeDataString(rest);
        if (!IsPlainName(decoded))
            return false;
        name = decoded;
        return true;
    }

    /// <summary>A name a directory can hold: not empty, not "." or "..", no '/' or NUL.</summary>
    internal static bool IsPlainName(string name) =>
        name.Length > 0 && name != "." && name != ".." && !name.Contains('/', StringComparison.Ordinal) && !name.Contains('\0', StringComparison.Ordinal);

    private static DateTimeOffset? ParseListingDate(string text)
    {
        // Listings print the server's idea of the time without a zone (nginx: UTC unless
        // autoindex_localtime; Apache: local time). Taken as UTC: it is informational only,
        // versions come from ETag/Last-Modified on HEAD.
        string[] formats = ["dd-MMM-yyyy HH:mm", "dd-MMM-yyyy HH:mm:ss", "d-MMM-yyyy HH:mm", "yyyy-MM-dd HH:mm", "yyyy-MM-dd HH:mm:ss"];
        return DateTimeOffset.TryParseExact(text.Trim(), formats, CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal | DateTimeStyles.AllowWhiteSpaces, out var d) ? d : null;
    }

    [GeneratedRegex("""<a\s[^>]*?href\s*=\s*(?:"(?<dq>[^"]*)"|'(?<sq>[^']*)'|(?<bare>[^\s>]+))[^>]*>.*?</a\s*>""", RegexOptions.IgnoreCase | RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex Anchor();

    [GeneratedRegex("<[^>]*>", RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex Tag();

    [GeneratedRegex(@"(?<date>\d{1,2}-[A-Za-z]{3}-\d{4}\s+\d{2}:\d{2}(?::\d{2})?|\d{4}-\d{2}-\d{2}\s+\d{2}:\d{2}(?::\d{2})?)\s+(?<size>\d+(?:\.\d+)?[KMGTPE]?|-)?", RegexOptions.CultureInvariant)]
    private static partial Regex DateAndSize();
}
