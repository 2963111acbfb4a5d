using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.Win32.SafeHandles;

namespace CsiCache.Bench;

/// <summary>
/// Where a workload reads from: a directory (local disk or a mount point), or an origin spoken to
/// directly (HTTP, S3) for its raw rate. Every read fills whole 1 MiB blocks so the checksums do
/// not depend on how the bytes arrived.
/// </summary>
internal abstract class ReadTarget : IDisposable
{
    /// <summary>Reads a whole file in 1 MiB blocks: its checksum and length.</summary>
    public abstract (ulong Hash, long Bytes) ReadWhole(string path, byte[] buffer);

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="offset"/>: their checksum.</summary>
    public abstract ulong ReadRange(string path, long offset, int length, byte[] buffer);

    /// <summary>Walks the tree under <paramref name="path"/>, looking at every entry: (entries, bytes of files).</summary>
    public abstract (long Entries, long Bytes) List(string path);

    public virtual void Dispose()
    {
    }

    /// <summary>Checksums a stream in 1 MiB blocks.</summary>
    protected static (ulong Hash, long Bytes) HashStream(Stream body, byte[] buffer)
    {
        ulong hash = 0;
        long total = 0;
        for (long block = 0; ; block++)
        {
            int n = Fill(body, buffer);
            if (n == 0)
            {
                break;
            }
            hash = Checksum.Combine(hash, Checksum.Block(buffer.AsSpan(0, n), block));
            total += n;
            if (n < buffer.Length)
            {
                break;
            }
        }
        return (hash, total);
    }

    protected static int Fill(Stream stream, Span<byte> buffer)
    {
        int filled = 0;
        while (filled < buffer.Length)
        {
            int n = stream.Read(buffer[filled..]);
            if (n == 0)
            {
                break;
            }
            filled += n;
        }
        return filled;
    }
}

/// <summary>A local directory or a mount point, through ordinary syscalls (pread, getdents, lstat).</summary>
internal sealed class FileTarget(string root) : ReadTarget
{
    public override (ulong Hash, long Bytes) ReadWhole(string path, byte[] buffer)
    {
        using SafeFileHandle handle = File.OpenHandle(Path.Join(root, path), FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.None);
        ulong hash = 0;
        long offset = 0;
        for (long block = 0; ; block++)
        {
            int n = Fill(handle, buffer, offset);
            if (n == 0)
            {
                break;
            }
            hash = Checksum.Combine(hash, Checksum.Block(buffer.AsSpan(0, n), block));
            offset += n;
            if (n < buffer.Length)
            {
                break;
            }
        }
        return (hash, offset);
    }

    public override ulong ReadRange(string path, long offset, int length, byte[] buffer)
    {
        using SafeFileHandle handle = File.OpenHandle(Path.Join(root, path), FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.None);
        int n = Fill(handle, buffer.AsSpan(0, length), offset);
        return Checksum.Block(buffer.AsSpan(0, n), offset);
    }

    public override (long Entries, long Bytes) List(string path)
    {
        long entries = 0, bytes = 0;
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false, ReturnSpecialDirectories = false };
        var walk = new System.IO.Enumeration.FileSystemEnumerable<long>(
            Path.Join(root, path),
            // LastWriteTimeUtc forces an lstat of every entry (as find -ls or os.walk + stat would);
            // Length alone would not for directories.
            (ref System.IO.Enumeration.FileSystemEntry e) => e.LastWriteTimeUtc.Ticks >= 0 && !e.IsDirectory ? e.Length : 0,
            options);
        foreach (long length in walk)
        {
            entries++;
            bytes += length;
        }
        return (entries, bytes);
    }

    private static int Fill(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        int filled = 0;
        while (filled < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer[filled..], offset + filled);
            if (n == 0)
            {
                break;
            }
            filled += n;
        }
        return filled;
    }
}

/// <summary>The HTTP origin itself: GETs (ranged where asked) and autoindex pages, over keep-alive connections.</summary>
internal sealed partial class HttpTarget(Uri root) : ReadTarget
{
    private readonly HttpClient _client = new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = 64,
        AutomaticDecompression = DecompressionMethods.None,
        UseProxy = false,
    })
    { Timeout = TimeSpan.FromMinutes(10) };

    public override (ulong Hash, long Bytes) ReadWhole(string path, byte[] buffer)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(root, path));
        using HttpResponseMessage response = _client.Send(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using Stream body = response.Content.ReadAsStream();
        return HashStream(body, buffer);
    }

    public override ulong ReadRange(string path, long offset, int length, byte[] buffer)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(root, path));
        request.Headers.Range = new RangeHeaderValue(offset, offset + length - 1);
        using HttpResponseMessage response = _client.Send(request, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode != HttpStatusCode.PartialContent)
        {
            throw new IOException($"GET {path} bytes={offset}-: {(int)response.StatusCode}, not 206");
        }
        using Stream body = response.Content.ReadAsStream();
        int n = Fill(body, buffer.AsSpan(0, length));
        return Checksum.Block(buffer.AsSpan(0, n), offset);
    }

    /// <summary>Whole file by <paramref name="streams"/> parallel ranged GETs of 1 MiB-aligned pieces.</summary>
    public (ulong Hash, long Bytes) ReadWholeParallel(string path, long size, int streams, int pieceBytes)
    {
        long blocks = (size + Dataset.BlockSize - 1) / Dataset.BlockSize;
        var blockHashes = new ulong[blocks];
        long pieces = (size + pieceBytes - 1) / pieceBytes;
        long next = -1;
        long total = 0;
        Parallel.For(0, streams, new ParallelOptions { MaxDegreeOfParallelism = streams }, _ =>
        {
            byte[] buffer = GC.AllocateUninitializedArray<byte>(Dataset.BlockSize);
            for (long piece = Interlocked.Increment(ref next); piece < pieces; piece = Interlocked.Increment(ref next))
            {
                long start = piece * pieceBytes;
                long end = Math.Min(size, start + pieceBytes);
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(root, path));
                request.Headers.Range = new RangeHeaderValue(start, end - 1);
                using HttpResponseMessage response = _client.Send(request, HttpCompletionOption.ResponseHeadersRead);
                response.EnsureSuccessStatusCode();
                using Stream body = response.Content.ReadAsStream();
                for (long offset = start; offset < end; offset += Dataset.BlockSize)
                {
                    int want = (int)Math.Min(Dataset.BlockSize, end - offset);
                    int n = Fill(body, buffer.AsSpan(0, want));
                    blockHashes[offset / Dataset.BlockSize] = Checksum.Block(buffer.AsSpan(0, n), offset / Dataset.BlockSize);
                    Interlocked.Add(ref total, n);
                }
            }
        });
        ulong hash = 0;
        foreach (ulong h in blockHashes)
        {
            hash = Checksum.Combine(hash, h);
        }
        return (hash, total);
    }

    /// <summary>Fetches every autoindex page under <paramref name="path"/>; counts the links (sizes are not parsed).</summary>
    public override (long Entries, long Bytes) List(string path)
    {
        long entries = 0;
        var pending = new Stack<string>();
        pending.Push(path.TrimEnd('/') + "/");
        for (int guard = 0; pending.Count > 0 && guard < 1_000_000; guard++)
        {
            string dir = pending.Pop();
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(root, dir));
            using HttpResponseMessage response = _client.Send(request);
            response.EnsureSuccessStatusCode();
            using var reader = new StreamReader(response.Content.ReadAsStream());
            string html = reader.ReadToEnd();
            foreach (Match m in Href().Matches(html))
            {
                string name = m.Groups[1].Value;
                if (name.StartsWith("../", StringComparison.Ordinal) || name.StartsWith('?') || name.StartsWith('/'))
                {
                    continue;
                }
                entries++;
                if (name.EndsWith('/'))
                {
                    pending.Push(dir + name);
                }
            }
        }
        return (entries, 0);
    }

    public override void Dispose()
    {
        _client.Dispose();
        base.Dispose();
    }

    [GeneratedRegex("<a href=\"([^\"]+)\"")]
    private static partial Regex Href();
}

/// <summary>The S3 origin itself, through AWSSDK.S3 GetObject (ranged where asked) and ListObjectsV2.</summary>
internal sealed class S3Target : ReadTarget
{
    private readonly AmazonS3Client _client;
    private readonly string _bucket;

    public S3Target(Uri endpoint, string bucket, string accessKey, string secretKey)
    {
        _bucket = bucket;
        _client = CreateClient(endpoint, accessKey, secretKey);
    }

    public static AmazonS3Client CreateClient(Uri endpoint, string accessKey, string secretKey) => new(new BasicAWSCredentials(accessKey, secretKey), new AmazonS3Config
    {
        ServiceURL = endpoint.AbsoluteUri,
        ForcePathStyle = true,
        AuthenticationRegion = "us-east-1",
        MaxErrorRetry = 2,
        Timeout = TimeSpan.FromMinutes(10),
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
    });

    public override (ulong Hash, long Bytes) ReadWhole(string path, byte[] buffer)
    {
        using GetObjectResponse response = _client.GetObjectAsync(_bucket, path).GetAwaiter().GetResult();
        using Stream body = response.ResponseStream;
        return HashStream(body, buffer);
    }

    public override ulong ReadRange(string path, long offset, int length, byte[] buffer)
    {
        using GetObjectResponse response = _client.GetObjectAsync(new GetObjectRequest
        {
            BucketName = _bucket,
            Key = path,
            ByteRange = new ByteRange(offset, offset + length - 1),
        }).GetAwaiter().GetResult();
        using Stream body = response.ResponseStream;
        int n = Fill(body, buffer.AsSpan(0, length));
        return Checksum.Block(buffer.AsSpan(0, n), offset);
    }

    /// <summary>Pages of ListObjectsV2 under the prefix (flat, as S3 tools list); directories are counted from the keys.</summary>
    public override (long Entries, long Bytes) List(string path)
    {
        long files = 0, bytes = 0;
        var directories = new HashSet<string>(StringComparer.Ordinal);
        string prefix = path.TrimEnd('/') + "/";
        string? token = null;
        for (int guard = 0; guard < 100_000; guard++)
        {
            ListObjectsV2Response page = _client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = _bucket, Prefix = prefix, ContinuationToken = token, MaxKeys = 1000 }).GetAwaiter().GetResult();
            foreach (S3Object o in page.S3Objects ?? [])
            {
                if (o.Key == prefix)
                {
                    continue;
                }
                if (o.Key.EndsWith('/'))
                {
                    directories.Add(o.Key.TrimEnd('/')); // a directory marker, not a file
                    continue;
                }
                files++;
                bytes += o.Size ?? 0;
                for (int slash = o.Key.IndexOf('/', prefix.Length); slash > 0; slash = o.Key.IndexOf('/', slash + 1))
                {
                    directories.Add(o.Key[..slash]);
                }
            }
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
            if (token is null)
            {
                break;
            }
        }
        return (files + directories.Count, bytes);
    }

    public override void Dispose()
    {
        _client.Dispose();
        base.Dispose();
    }
}
