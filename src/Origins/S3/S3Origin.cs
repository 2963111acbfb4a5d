using System.Buffers;
using System.Net;
using Amazon;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using CsiCache.Origins.Internal;
using RetryPolicy = CsiCache.Origins.Internal.RetryPolicy;

namespace CsiCache.Origins.S3;

/// <summary>
/// An origin over <c>s3://bucket/prefix/</c> through AWSSDK.S3 v4: ListObjectsV2 with Delimiter "/"
/// (common prefixes are directories), HeadObject, ranged GetObject guarded by If-Match on the ETag.
/// The SDK's own retries are off so <see cref="RetryPolicy"/> is the one policy for every origin.
/// </summary>
internal sealed class S3Origin : IOrigin
{
    private readonly AmazonS3Client _client;
    private readonly string _bucket;
    private readonly string _prefix;
    private readonly int _pageSize;
    private readonly RetryPolicy _retry;

    public S3Origin(DatasetSource source, S3Credentials credentials, OriginOptions options)
    {
        var location = source.S3 ?? throw new ArgumentException("not an s3 source", nameof(source));
        Identity = source.Identity;
        _bucket = location.Bucket;
        _prefix = location.Prefix;
        _pageSize = options.ListPageSize;
        _retry = new RetryPolicy(options, Identity);

        var config = new AmazonS3Config
        {
            ForcePathStyle = location.PathStyle,
            MaxErrorRetry = 0,
            // A little above ours, so RetryPolicy's per-attempt token is what fires and is reported.
            Timeout = options.RequestTimeout + TimeSpan.FromSeconds(1),
            MaxConnectionsPerServer = options.MaxConnectionsPerServer,
            // SDK v4 sends and checks the new flexible checksums by default; S3-compatible stores
            // (s3rver, older MinIO/Ceph) reject or ignore them, and ranged GETs carry none anyway.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        if (location.Endpoint is not null)
        {
            // ServiceURL and RegionEndpoint are exclusive; the region still signs the requests.
            config.ServiceURL = location.Endpoint.AbsoluteUri;
            config.AuthenticationRegion = location.Region;
        }
        else
        {
            config.RegionEndpoint = RegionEndpoint.GetBySystemName(location.Region);
        }
        _client = credentials.Credentials is null
            ? new AmazonS3Client(config)
            : new AmazonS3Client(credentials.Credentials, config);
    }

    public string Identity { get; }

    public async Task<OriginListPage> ListAsync(string directoryPath, string? continuationToken, CancellationToken ct)
    {
        OriginPaths.Validate(directoryPath, allowRoot: true);
        string prefix = directoryPath.Length == 0 ? _prefix : _prefix + directoryPath + "/";
        var request = new ListObjectsV2Request
        {
            BucketName = _bucket,
            Prefix = prefix,
            Delimiter = "/",
            MaxKeys = _pageSize,
            ContinuationToken = continuationToken,
        };
        var response = await _retry.ExecuteAsync("list", directoryPath, (Origin: this, Request: request, Path: directoryPath),
            static async (s, t) =>
            {
                try
                {
                    return await s.Origin._client.ListObjectsV2Async(s.Request, t);
                }
                catch (AmazonServiceException e)
                {
                    throw s.Origin.Map(e, s.Path);
                }
                catch (AmazonClientException e) when (!RetryPolicy.IsTransientTransport(e) && e.InnerException is not OperationCanceledException)
                {
                    throw s.Origin.ClientError(e, s.Path);
                }
            }, ct);

        var entries = new List<OriginEntry>((response.S3Objects?.Count ?? 0) + (response.CommonPrefixes?.Count ?? 0));
        if (response.S3Objects is not null)
        {
            foreach (var o in response.S3Objects)
            {
                string name = o.Key[prefix.Length..];
                // "dir/" placeholder objects (console-made folders) and keys with empty segments
                // ("a//b") cannot be files of a POSIX tree.
                if (!IsPlainName(name))
                    continue;
                entries.Add(new OriginEntry(name, OriginEntryKind.File, o.Size ?? -1,
                    o.LastModified is { } lm ? new DateTimeOffset(DateTime.SpecifyKind(lm, DateTimeKind.Utc)) : null, o.ETag));
            }
        }
        if (response.CommonPrefixes is not null)
        {
            foreach (string p in response.CommonPrefixes)
            {
                string name = p[prefix.Length..].TrimEnd('/');
                if (IsPlainName(name))
                    entries.Add(new OriginEntry(name, OriginEntryKind.Directory, 0, null, null));
            }
        }
        string? next = response.IsTruncated == true ? response.NextContinuationToken : null;
        // S3 has no directories: an empty first page under a sub-prefix means there is none.
        if (directoryPath.Length > 0 && continuationToken is null && next is null && entries.Count == 0
            && (response.KeyCount ?? 0) == 0)
            throw new OriginNotFoundException($"'{directoryPath}' does not exist in {Identity}");
        return new OriginListPage(entries, next);
    }

    public Task<OriginObject> StatAsync(string path, CancellationToken ct)
    {
        OriginPaths.Validate(path, allowRoot: false);
        return _retry.ExecuteAsync("stat", path, (Origin: this, Path: path), static async (s, t) =>
        {
            GetObjectMetadataResponse r;
            try
            {
                r = await s.Origin._client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = s.Origin._bucket, Key = s.Origin._prefix + s.Path }, t);
            }
            catch (AmazonServiceException e)
            {
                throw s.Origin.Map(e, s.Path);
            }
            catch (AmazonClientException e) when (!RetryPolicy.IsTransientTransport(e) && e.InnerException is not OperationCanceledException)
            {
                throw s.Origin.ClientError(e, s.Path);
            }
            return new OriginObject(s.Path, r.ContentLength, r.ETag,
                r.LastModified is { } lm ? new DateTimeOffset(DateTime.SpecifyKind(lm, DateTimeKind.Utc)) : null);
        }, ct);
    }

    public async Task<int> ReadAsync(OriginObject obj, long offset, Memory<byte> destination, CancellationToken ct)
    {
        int want = OriginPaths.ReadLength(obj, offset, destination.Length);
        OriginPaths.Validate(obj.Path, allowRoot: false);
        int done = 0;
        while (done < want)
        {
            var round = new ReadRound(this, obj, offset + done, destination.Slice(done, want - done));
            int n = await _retry.ExecuteAsync("read", obj.Path, round, static (s, t) => s.Origin.ReadOnceAsync(s, t), ct);
            if (n <= 0)
                throw new OriginUnavailableException($"read '{obj.Path}' in {Identity}: the server returned no bytes");
            done += n;
        }
        return done;
    }

    public void Dispose() => _client.Dispose();

    private async Task<int> ReadOnceAsync(ReadRound s, CancellationToken ct)
    {
        long start = s.Offset;
        long last = s.Offset + s.Destination.Length - 1;
        var request = new GetObjectRequest
        {
            BucketName = _bucket,
            Key = _prefix + s.Object.Path,
            ByteRange = new ByteRange(start, last),
            // Real S3 answers 412 on a changed object; stores that ignore If-Match (s3rver) are
            // caught by the ETag check on the response below.
            EtagToMatch = s.Object.Version,
        };
        GetObjectResponse response;
        try
        {
            response = await _client.GetObjectAsync(request, ct);
        }
        catch (AmazonServiceException e)
        {
            throw Map(e, s.Object.Path);
        }
        catch (AmazonClientException e) when (!RetryPolicy.IsTransientTransport(e) && e.InnerException is not OperationCanceledException)
        {
            throw ClientError(e, s.Object.Path);
        }
        using (response)
        {
            if (response.ETag != s.Object.Version)
                throw Changed(s.Object, "the ETag differs");
            long bodyStart;
            long bodyLength;
            if (response.HttpStatusCode == HttpStatusCode.PartialContent)
            {
                if (!TryParseContentRange(response.ContentRange, out long from, out long to, out long total))
                    throw new OriginException($"read '{s.Object.Path}' in {Identity}: 206 without a usable Content-Range");
                if (total >= 0 && total != s.Object.Size)
                    throw Changed(s.Object, "the total length differs");
                // A range that covers our start is usable even if wider than asked.
                if (from > start || to < start || to >= s.Object.Size)
                    throw new OriginException($"read '{s.Object.Path}' in {Identity}: the server sent a range that does not cover the one asked");
                bodyStart = from;
                bodyLength = to - from + 1;
            }
            else
            {
                // Range ignored: the whole object.
                if (response.ContentLength != s.Object.Size)
                    throw Changed(s.Object, "the length differs");
                bodyStart = 0;
                bodyLength = s.Object.Size;
            }
            var body = response.ResponseStream;
            if (start > bodyStart)
                await SkipAsync(body, start - bodyStart, ct);
            int toRead = (int)Math.Min(s.Destination.Length, bodyLength - (start - bodyStart));
            await body.ReadExactlyAsync(s.Destination[..toRead], ct);
            return toRead;
        }
    }

    private static async Task SkipAsync(Stream body, long count, CancellationToken ct)
    {
        byte[] scratch = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (count > 0)
            {
                int n = await body.ReadAsync(scratch.AsMemory(0, (int)Math.Min(scratch.Length, count)), ct);
                if (n == 0)
                    throw new EndOfStreamException("body ended early");
                count -= n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>"bytes a-b/total" (total may be "*").</summary>
    internal static bool TryParseContentRange(string? value, out long from, out long to, out long total)
    {
        from = to = total = -1;
        if (value is null || !value.StartsWith("bytes ", StringComparison.OrdinalIgnoreCase))
            return false;
        var span = value.AsSpan(6).Trim();
        int dash = span.IndexOf('-');
        int slash = span.IndexOf('/');
        if (dash <= 0 || slash <= dash)
            return false;
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        if (!long.TryParse(span[..dash], System.Globalization.NumberStyles.None, ci, out from)
            || !long.TryParse(span[(dash + 1)..slash], System.Globalization.NumberStyles.None, ci, out to))
            return false;
        var totalText = span[(slash + 1)..];
        if (totalText is "*")
            return true;
        return long.TryParse(totalText, System.Globalization.NumberStyles.None, ci, out total);
    }

    private static bool IsPlainName(string name) =>
        name.Length > 0 && name != "." && name != ".." && !name.Contains('/', StringComparison.Ordinal);

    /// <summary>
    /// S3 errors to origin errors. Only the status and S3 error code go in the message: the
    /// service's text can quote request details, and nothing here may carry a credential.
    /// </summary>
    private Exception Map(AmazonServiceException e, string path)
    {
        string where = $"'{path}' in {Identity}";
        string code = string.IsNullOrEmpty(e.ErrorCode) ? "" : " " + e.ErrorCode;
        int status = (int)e.StatusCode;
        return status switch
        {
            // No HTTP response at all: the SDK wraps a refused/reset connection or a timeout.
            0 => new TransientOriginException($"{where}: S3 endpoint unreachable ({RetryPolicy.Describe(e)})", e),
            404 => new OriginNotFoundException($"{where} does not exist (S3{code})", e),
            401 or 403 => new OriginAccessDeniedException($"{where}: access denied (S3{code}); check the secrets accessKeyId/secretAccessKey or the bucket policy", e),
            412 => new OriginObjectChangedException($"{where} changed at the origin (S3 412)", e),
            416 => new OriginObjectChangedException($"{where} changed at the origin (S3 416: shorter than expected)", e),
            408 or 429 or >= 500 => new TransientOriginException($"{where}: S3 HTTP {status}{code}", e),
            _ when e.ErrorCode is "RequestTimeout" or "SlowDown" or "RequestTimeTooSkewed" => new TransientOriginException($"{where}: S3{code}", e),
            _ => new OriginException($"{where}: S3 HTTP {status}{code}", e),
        };
    }

    /// <summary>
    /// A client-side failure that is not the network: most often no credentials could be found
    /// (no secrets, no IRSA/instance profile). The SDK's text names the cause, never a key.
    /// </summary>
    private OriginException ClientError(AmazonClientException e, string path) =>
        new OriginAccessDeniedException($"'{path}' in {Identity}: S3 client error ({e.Message}); give the secrets accessKeyId/secretAccessKey, or anonymous=true for a public bucket", e);

    private OriginObjectChangedException Changed(OriginObject obj, string why) =>
        new($"'{obj.Path}' in {Identity} changed at the origin ({why})");

    private sealed record ReadRound(S3Origin Origin, OriginObject Object, long Offset, Memory<byte> Destination);
}
