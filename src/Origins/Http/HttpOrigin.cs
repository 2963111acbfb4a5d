using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using CsiCache.Origins.Internal;

namespace CsiCache.Origins.Http;

/// <summary>
/// An origin over an HTTP(S) directory tree with autoindex listings, or over one file URL.
/// Reads are Range GETs guarded by the version: If-Match on a strong ETag (or
/// If-Unmodified-Since), and the response's ETag, Content-Range and total length are checked, so a
/// read never returns bytes of another version. A server that ignores Range (200 with the whole
/// body) is handled by skipping to the offset in that body.
/// </summary>
internal sealed class HttpOrigin : IOrigin
{
    /// <summary>Largest listing body we accept; a directory page beyond this is a misconfigured server, not a dataset.</summary>
    private const long MaxListingBytes = 64L << 20;

    private readonly Uri _root;
    private readonly string? _singleFile;
    private readonly HttpClient _client;
    private readonly RetryPolicy _retry;
    private readonly int _pageSize;
    // The last listing fetched, so paging through a big directory costs one GET, not one per page.
    private volatile ListingCacheEntry? _lastListing;

    public HttpOrigin(DatasetSource source, HttpCredentials credentials, OriginOptions options)
    {
        _root = source.HttpRoot ?? throw new ArgumentException("not an http(s) source", nameof(source));
        _singleFile = source.SingleFileName;
        Identity = source.Identity;
        _retry = new RetryPolicy(options, Identity);
        _pageSize = options.ListPageSize;
        var handler = new SocketsHttpHandler
        {
            // Ranges must address the stored bytes: a decompressed body has other offsets.
            AutomaticDecompression = DecompressionMethods.None,
            MaxConnectionsPerServer = options.MaxConnectionsPerServer,
            ConnectTimeout = options.RequestTimeout,
            // Recycle connections so a DNS change (a moved origin) is seen within minutes.
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            UseCookies = false,
            AllowAutoRedirect = true,
            MaxAutomaticRedirections = 5,
        };
        // Timeouts come from RetryPolicy's per-attempt token, which also covers the body.
        _client = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _client.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("csicache", "1"));
        // identity: Content-Length, ETag and Range must all describe the stored bytes.
        _client.DefaultRequestHeaders.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
        if (credentials.Authorization is not null)
            _client.DefaultRequestHeaders.Authorization = credentials.Authorization;
    }

    public string Identity { get; }

    public async Task<OriginListPage> ListAsync(string directoryPath, string? continuationToken, CancellationToken ct)
    {
        OriginPaths.Validate(directoryPath, allowRoot: true);
        OriginEntry[] all;
        if (_singleFile is not null)
        {
            if (directoryPath.Length != 0)
                throw new OriginNotFoundException($"'{directoryPath}' does not exist in {Identity} (a single-file source)");
            var obj = await StatAsync(_singleFile, ct);
            all = [new OriginEntry(_singleFile, OriginEntryKind.File, obj.Size, obj.Modified, obj.Version)];
        }
        else
        {
            var cached = _lastListing;
            if (continuationToken is not null && cached is not null && cached.Directory == directoryPath)
                all = cached.Entries;
            else
            {
                all = await FetchListingAsync(directoryPath, ct);
                _lastListing = new ListingCacheEntry(directoryPath, all);
            }
        }

        // Entries are sorted by ordinal name; the token is the last name returned.
        int start = 0;
        if (continuationToken is not null)
        {
            int lo = 0, hi = all.Length;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (string.CompareOrdinal(all[mid].Name, continuationToken) <= 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            start = lo;
        }
        int count = Math.Min(_pageSize, all.Length - start);
        var page = new OriginEntry[count];
        Array.Copy(all, start, page, 0, count);
        string? next = start + count < all.Length ? page[^1].Name : null;
        if (next is null && ReferenceEquals(_lastListing?.Entries, all))
            _lastListing = null;
        return new OriginListPage(page, next);
    }

    public Task<OriginObject> StatAsync(string path, CancellationToken ct)
    {
        ValidateFilePath(path);
        return _retry.ExecuteAsync("stat", path, (Origin: this, Path: path), static (s, t) => s.Origin.StatOnceAsync(s.Path, t), ct);
    }

    public Task<(OriginObject Object, int Read)> StatAndReadAsync(string path, Memory<byte> destination, CancellationToken ct)
    {
        ValidateFilePath(path);
        if (destination.IsEmpty)
            return StatOnlyAsync(path, ct);
        return _retry.ExecuteAsync("stat", path, (Origin: this, Path: path, Destination: destination),
            static (s, t) => s.Origin.StatAndReadOnceAsync(s.Path, s.Destination, t), ct);
    }

    public async Task<int> ReadAsync(OriginObject obj, long offset, Memory<byte> destination, CancellationToken ct)
    {
        int want = OriginPaths.ReadLength(obj, offset, destination.Length);
        OriginPaths.Validate(obj.Path, allowRoot: false);
        var version = HttpObjectVersion.Parse(obj.Version);
        int done = 0;
        while (done < want)
        {
            // Each round asks for what is still missing; a server may return a shorter 206, and
            // a retry after a broken body resumes from the last full round.
            var state = new ReadRound(this, obj, version, offset + done, destination.Slice(done, want - done));
            int n = await _retry.ExecuteAsync("read", obj.Path, state, static (s, t) => s.Origin.ReadOnceAsync(s, t), ct);
            if (n <= 0)
                throw new OriginUnavailableException($"read '{obj.Path}' in {Identity}: the server returned no bytes");
            done += n;
        }
        return done;
    }

    public void Dispose() => _client.Dispose();

    private Uri UriFor(string path, bool directory)
    {
        if (path.Length == 0)
            return _root;
        var sb = new System.Text.StringBuilder(_root.AbsoluteUri);
        foreach (string segment in path.Split('/'))
            sb.Append(Uri.EscapeDataString(segment)).Append('/');
        if (!directory)
            sb.Length--;
        return new Uri(sb.ToString());
    }

    private async Task<OriginEntry[]> FetchListingAsync(string directoryPath, CancellationToken ct)
    {
        var entries = await _retry.ExecuteAsync("list", directoryPath, (Origin: this, Path: directoryPath),
            static (s, t) => s.Origin.ListOnceAsync(s.Path, t), ct);
        entries.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        // A name listed twice (Apache can show a dir both as link text and icon link) is kept once.
        int w = 0;
        for (int r = 0; r < entries.Count; r++)
        {
            if (w > 0 && entries[w - 1].Name == entries[r].Name)
                continue;
            entries[w++] = entries[r];
        }
        return entries.GetRange(0, w).ToArray();
    }

    private async Task<List<OriginEntry>> ListOnceAsync(string directoryPath, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, UriFor(directoryPath, directory: true));
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        ThrowForStatus(response, directoryPath);
        if (response.StatusCode != HttpStatusCode.OK)
            throw new OriginException($"list '{directoryPath}' in {Identity}: unexpected HTTP {(int)response.StatusCode}");
        if (response.Content.Headers.ContentLength > MaxListingBytes)
            throw new OriginException($"list '{directoryPath}' in {Identity}: listing larger than {MaxListingBytes >> 20} MiB");
        string body = await response.Content.ReadAsStringAsync(ct);
        Uri page = response.RequestMessage?.RequestUri ?? request.RequestUri!;
        try
        {
            return AutoindexParser.Parse(body, response.Content.Headers.ContentType?.MediaType, page);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new OriginException($"list '{directoryPath}' in {Identity}: the JSON listing is malformed", e);
        }
        catch (FormatException e)
        {
            throw new OriginException($"list '{directoryPath}' in {Identity}: {e.Message}", e);
        }
    }

    /// <summary>A file path this origin can have: well formed, and the one file of a single-file source.</summary>
    private void ValidateFilePath(string path)
    {
        OriginPaths.Validate(path, allowRoot: false);
        if (_singleFile is not null && path != _singleFile)
            throw new OriginNotFoundException($"'{path}' does not exist in {Identity} (a single-file source)");
    }

    private async Task<(OriginObject Object, int Read)> StatOnlyAsync(string path, CancellationToken ct) => (await StatAsync(path, ct), 0);

    /// <summary>
    /// One GET of bytes 0..destination.Length-1: the response's headers are the stat (total length
    /// from Content-Range, version from ETag/Last-Modified) and its body the first bytes, so both
    /// belong to one version by construction.
    /// </summary>
    private async Task<(OriginObject Object, int Read)> StatAndReadOnceAsync(string path, Memory<byte> destination, CancellationToken ct)
    {
        using var get = new HttpRequestMessage(HttpMethod.Get, UriFor(path, directory: false));
        get.Headers.Range = new RangeHeaderValue(0, destination.Length - 1);
        using var r = await _client.SendAsync(get, HttpCompletionOption.ResponseHeadersRead, ct);
        if (r.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && r.Content.Headers.ContentRange is { HasLength: true } empty)
        {
            // Byte 0 is past the end: an empty file.
            CheckNotDirectory(r, path);
            long emptySize = empty.Length!.Value;
            return (new OriginObject(path, emptySize, HttpObjectVersion.From(r, emptySize), r.Content.Headers.LastModified), 0);
        }
        ThrowForStatus(r, path);
        CheckNotDirectory(r, path);
        CheckIdentityEncoding(r, path);
        long size;
        long bodyLength;
        if (r.StatusCode == HttpStatusCode.PartialContent && r.Content.Headers.ContentRange is { HasLength: true, From: 0, To: long to } cr)
        {
            size = cr.Length!.Value;
            bodyLength = to + 1;
        }
        else if (r.StatusCode == HttpStatusCode.OK && r.Content.Headers.ContentLength is long l)
        {
            // Range ignored: the body is the whole object; only its start is read.
            size = l;
            bodyLength = l;
        }
        else
        {
            throw new OriginException($"stat '{path}' in {Identity}: the server gives no usable length (HTTP {(int)r.StatusCode})");
        }
        int toRead = (int)Math.Min(destination.Length, Math.Min(bodyLength, size));
        await using (var body = await r.Content.ReadAsStreamAsync(ct))
        {
            await body.ReadExactlyAsync(destination[..toRead], ct);
        }
        return (new OriginObject(path, size, HttpObjectVersion.From(r, size), r.Content.Headers.LastModified), toRead);
    }

    private async Task<OriginObject> StatOnceAsync(string path, CancellationToken ct)
    {
        Uri uri = UriFor(path, directory: false);
        using (var head = new HttpRequestMessage(HttpMethod.Head, uri))
        using (var response = await _client.SendAsync(head, HttpCompletionOption.ResponseHeadersRead, ct))
        {
            // HEAD unsupported, or no length: fall through to a one-byte ranged GET.
            if (response.StatusCode is not (HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotImplemented))
            {
                ThrowForStatus(response, path);
                CheckNotDirectory(response, path);
                CheckIdentityEncoding(response, path);
                if (response.StatusCode == HttpStatusCode.OK && response.Content.Headers.ContentLength is long length)
                    return new OriginObject(path, length, HttpObjectVersion.From(response, length), response.Content.Headers.LastModified);
            }
        }

        // The same one-byte ranged GET a first open makes, its byte unused.
        return (await StatAndReadOnceAsync(path, new byte[1], ct)).Object;
    }

    private async Task<int> ReadOnceAsync(ReadRound s, CancellationToken ct)
    {
        long start = s.Offset;
        long last = s.Offset + s.Destination.Length - 1;
        using var request = new HttpRequestMessage(HttpMethod.Get, UriFor(s.Object.Path, directory: false));
        request.Headers.Range = new RangeHeaderValue(start, last);
        s.Version.AddPreconditions(request);
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode is HttpStatusCode.PreconditionFailed or HttpStatusCode.RequestedRangeNotSatisfiable)
            throw Changed(s.Object, $"HTTP {(int)response.StatusCode}");
        ThrowForStatus(response, s.Object.Path);
        CheckIdentityEncoding(response, s.Object.Path);

        long bodyStart;   // offset in the object of the body's first byte
        long bodyLength;
        if (response.StatusCode == HttpStatusCode.PartialContent)
        {
            var cr = response.Content.Headers.ContentRange;
            if (cr is null || !cr.From.HasValue || !cr.To.HasValue || !string.Equals(cr.Unit, "bytes", StringComparison.OrdinalIgnoreCase))
                throw new OriginException($"read '{s.Object.Path}' in {Identity}: 206 without a usable Content-Range");
            if (cr.HasLength && cr.Length!.Value != s.Object.Size)
                throw Changed(s.Object, "the total length differs");
            // A range that covers our start is usable even if it is wider than asked (some
            // servers align to blocks); the reader skips and stops as needed.
            if (cr.From.Value > start || cr.To.Value < start || cr.To.Value >= s.Object.Size)
                throw new OriginException($"read '{s.Object.Path}' in {Identity}: the server sent a range that does not cover the one asked");
            bodyStart = cr.From.Value;
            bodyLength = cr.To.Value - cr.From.Value + 1;
        }
        else if (response.StatusCode == HttpStatusCode.OK)
        {
            // Range ignored: this is the whole object. Its length must be the object's size.
            if (response.Content.Headers.ContentLength is long cl && cl != s.Object.Size)
                throw Changed(s.Object, "the length differs");
            bodyStart = 0;
            bodyLength = s.Object.Size;
        }
        else
        {
            throw new OriginException($"read '{s.Object.Path}' in {Identity}: unexpected HTTP {(int)response.StatusCode}");
        }
        // The server may not honour If-Match; the response says which version it is.
        if (!s.Version.Matches(response, s.Object.Size))
            throw Changed(s.Object, "the ETag/Last-Modified differs");

        await using var body = await response.Content.ReadAsStreamAsync(ct);
        if (start > bodyStart)
            await SkipAsync(body, start - bodyStart, s.Object, ct);
        int toRead = (int)Math.Min(s.Destination.Length, bodyLength - (start - bodyStart));
        await body.ReadExactlyAsync(s.Destination[..toRead], ct);
        return toRead;
    }

    private static async Task SkipAsync(Stream body, long count, OriginObject obj, CancellationToken ct)
    {
        byte[] scratch = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (count > 0)
            {
                int n = await body.ReadAsync(scratch.AsMemory(0, (int)Math.Min(scratch.Length, count)), ct);
                if (n == 0)
                    throw new EndOfStreamException($"body of '{obj.Path}' ended early");
                count -= n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private void CheckNotDirectory(HttpResponseMessage response, string path)
    {
        // nginx and Apache redirect "dir" to "dir/"; the final URL says it is a directory.
        if (response.RequestMessage?.RequestUri is { } final && final.AbsolutePath.EndsWith('/'))
            throw new OriginNotFoundException($"'{path}' in {Identity} is a directory, not a file");
    }

    /// <summary>
    /// Sizes and ranges must count stored bytes. A server that compresses anyway (despite
    /// Accept-Encoding: identity) would hand us offsets into another byte stream.
    /// </summary>
    private void CheckIdentityEncoding(HttpResponseMessage response, string path)
    {
        foreach (string encoding in response.Content.Headers.ContentEncoding)
        {
            if (!string.Equals(encoding, "identity", StringComparison.OrdinalIgnoreCase))
                throw new OriginException($"'{path}' in {Identity}: the server sent Content-Encoding {encoding} although asked for identity; ranges would not address the file's bytes");
        }
    }

    private void ThrowForStatus(HttpResponseMessage response, string path)
    {
        int code = (int)response.StatusCode;
        if (code is >= 200 and < 300)
            return;
        string where = $"'{path}' in {Identity}";
        switch (code)
        {
            case 404 or 410:
                throw new OriginNotFoundException($"{where} does not exist (HTTP {code})");
            case 401 or 403:
                throw new OriginAccessDeniedException($"{where}: access denied (HTTP {code})");
            case 408 or 429 or >= 500:
                throw new TransientOriginException($"{where}: HTTP {code}", null, RetryAfter(response));
            default:
                throw new OriginException($"{where}: unexpected HTTP {code}");
        }
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var ra = response.Headers.RetryAfter;
        if (ra?.Delta is { } delta)
            return delta;
        if (ra?.Date is { } date)
            return date - DateTimeOffset.UtcNow;
        return null;
    }

    private OriginObjectChangedException Changed(OriginObject obj, string why) =>
        new($"'{obj.Path}' in {Identity} changed at the origin ({why})");

    private sealed record ListingCacheEntry(string Directory, OriginEntry[] Entries);

    private sealed record ReadRound(HttpOrigin Origin, OriginObject Object, HttpObjectVersion Version, long Offset, Memory<byte> Destination);
}

/// <summary>
/// The HTTP version token: a strong ETag ("\"abc\""), a weak one ("W/\"abc\"") or, without an ETag,
/// "lm:" + Last-Modified ticks + ":" + length. Strong ETags go in If-Match; weak ones cannot
/// (RFC 9110 §13.1.1 uses strong comparison), so they are checked on the response only.
/// </summary>
internal readonly record struct HttpObjectVersion(EntityTagHeaderValue? ETag, DateTimeOffset? LastModified, long Length)
{
    private const string LastModifiedPrefix = "lm:";

    public static string From(HttpResponseMessage response, long length)
    {
        if (response.Headers.ETag is { } etag)
            return etag.ToString();
        var lm = response.Content.Headers.LastModified;
        return string.Create(CultureInfo.InvariantCulture, $"{LastModifiedPrefix}{(lm?.UtcTicks ?? 0)}:{length}");
    }

    public static HttpObjectVersion Parse(string version)
    {
        if (version.StartsWith(LastModifiedPrefix, StringComparison.Ordinal))
        {
            var parts = version[LastModifiedPrefix.Length..].Split(':');
            long ticks = long.Parse(parts[0], CultureInfo.InvariantCulture);
            return new HttpObjectVersion(null, ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero), long.Parse(parts[1], CultureInfo.InvariantCulture));
        }
        return new HttpObjectVersion(EntityTagHeaderValue.Parse(version), null, -1);
    }

    public void AddPreconditions(HttpRequestMessage request)
    {
        if (ETag is { IsWeak: false })
            request.Headers.IfMatch.Add(ETag);
        else if (ETag is null && LastModified is { } lm)
            request.Headers.IfUnmodifiedSince = lm;
    }

    public bool Matches(HttpResponseMessage response, long size)
    {
        if (ETag is not null)
        {
            // A server that sends no ETag on this response (some proxies) relies on If-Match alone.
            var got = response.Headers.ETag;
            return got is null || (got.Tag == ETag.Tag && (ETag.IsWeak || !got.IsWeak));
        }
        var lastModified = response.Content.Headers.LastModified;
        return Length == size && (LastModified is null || lastModified is null || lastModified == LastModified);
    }
}
