using System.Globalization;
using Amazon.S3;
using Amazon.S3.Model;

namespace CsiCache.Bench;

/// <summary>
/// nginx serving the data directory on 127.0.0.1 with autoindex (HTML, exact sizes): the fast HTTP
/// origin for csicache and rclone. Its own config, pid and logs live in a scratch directory; it
/// runs in the foreground (daemon off) as our child, so stopping it is ours to do.
/// </summary>
internal sealed class NginxServer : IDisposable
{
    private readonly ChildProcess _process;

    private NginxServer(ChildProcess process, int port)
    {
        _process = process;
        Url = new Uri($"http://127.0.0.1:{port}/");
    }

    public Uri Url { get; }

    public static NginxServer Start(string dataRoot, string scratch)
    {
        Directory.CreateDirectory(scratch);
        int port = ChildProcess.FreePort();
        string conf = Path.Join(scratch, "nginx.conf");
        // Temp paths point into scratch so nothing touches /var/lib/nginx; 2 workers for 2 cores.
        File.WriteAllText(conf, string.Create(CultureInfo.InvariantCulture, $$"""
            worker_processes 2;
            daemon off;
            pid {{scratch}}/nginx.pid;
            error_log {{scratch}}/error.log warn;
            events { worker_connections 1024; }
            http {
                access_log off;
                sendfile on;
                tcp_nopush on;
                keepalive_requests 1000000;
                keepalive_timeout 300s;
                default_type application/octet-stream;
                client_body_temp_path {{scratch}}/body;
                proxy_temp_path {{scratch}}/proxy;
                fastcgi_temp_path {{scratch}}/fastcgi;
                uwsgi_temp_path {{scratch}}/uwsgi;
                scgi_temp_path {{scratch}}/scgi;
                server {
                    listen 127.0.0.1:{{port}};
                    root {{dataRoot}};
                    location / { autoindex on; autoindex_exact_size on; }
                }
            }
            """));
        ChildProcess process = ChildProcess.Start("nginx", ["-p", scratch, "-c", conf, "-e", Path.Join(scratch, "error.log")], Path.Join(scratch, "nginx.out"), stopSignal: "TERM");
        if (!ChildProcess.WaitForPort(port, TimeSpan.FromSeconds(20), () => !process.HasExited))
        {
            string tail = process.Tail;
            process.Dispose();
            throw new InvalidOperationException("nginx did not start: " + tail);
        }
        return new NginxServer(process, port);
    }

    public void Dispose() => _process.Dispose();
}

/// <summary>
/// s3rver (npm) on 127.0.0.1, via tests/s3rver/start.js, holding a copy of the data set in a
/// bucket. Its store persists in the work directory, so the upload happens once per shape. The
/// script exits when its stdin closes, so it cannot outlive the benchmark.
/// </summary>
internal sealed class S3rverServer : IDisposable
{
    public const string Bucket = "bench";
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";

    private readonly ChildProcess _process;

    private S3rverServer(ChildProcess process, int port)
    {
        _process = process;
        Endpoint = new Uri($"http://127.0.0.1:{port}/");
    }

    public Uri Endpoint { get; }

    public ChildProcess Process => _process;

    public static S3rverServer Start(string repoRoot, string store, string logPath)
    {
        string dir = Path.Join(repoRoot, "tests", "s3rver");
        if (!Directory.Exists(Path.Join(dir, "node_modules", "s3rver")))
        {
            throw new InvalidOperationException("s3rver is not installed: run bench/setup.sh (npm ci --prefix tests/s3rver)");
        }
        Directory.CreateDirectory(store);
        int? port = null;
        var ready = new ManualResetEventSlim();
        // s3rver 3.7 encrypts ListObjectsV2 continuation tokens with DES (OpenSSL 3 legacy provider).
        ChildProcess process = ChildProcess.Start("node", ["--openssl-legacy-provider", Path.Join(dir, "start.js"), store], logPath,
            stopSignal: "TERM", environment: new Dictionary<string, string> { ["NODE_PATH"] = Path.Join(dir, "node_modules") }, keepStdinOpen: true);
        process.Line += line =>
        {
            if (line.StartsWith("LISTENING ", StringComparison.Ordinal))
            {
                port = int.Parse(line.AsSpan(10), CultureInfo.InvariantCulture);
                ready.Set();
            }
        };
        for (int i = 0; i < 300 && !ready.IsSet && !process.HasExited; i++)
        {
            ready.Wait(100);
        }
        if (port is not int p)
        {
            string tail = process.Tail;
            process.Dispose();
            throw new InvalidOperationException("s3rver did not start: " + tail);
        }
        return new S3rverServer(process, p);
    }

    /// <summary>Uploads the data set unless a marker in the store says this shape is there already.</summary>
    public void Seed(Dataset data, string store, TextWriter log)
    {
        string marker = Path.Join(store, "..", Path.GetFileName(store) + ".complete");
        string description = data.Shape.ToString();
        using AmazonS3Client client = S3Target.CreateClient(Endpoint, AccessKey, SecretKey);
        if (File.Exists(marker) && File.ReadAllText(marker) == description)
        {
            log.WriteLine("s3rver: reusing the uploaded data set");
            PutDirectoryMarkers(client, data);
            return;
        }
        log.WriteLine($"s3rver: uploading the data set ({Format.Bytes(data.Shape.TotalBytes)}, once) ...");
        try
        {
            client.PutBucketAsync(Bucket).GetAwaiter().GetResult();
        }
        catch (AmazonS3Exception e) when (e.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
        {
        }
        Parallel.ForEach(data.AllFiles, new ParallelOptions { MaxDegreeOfParallelism = 4 }, file =>
        {
            using var stream = new FileStream(Path.Join(data.Root, file.RelativePath), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = Bucket,
                Key = file.RelativePath,
                InputStream = stream,
                UseChunkEncoding = false,
                AutoCloseStream = false,
            }).GetAwaiter().GetResult();
        });
        PutDirectoryMarkers(client, data);
        File.WriteAllText(marker, description);
    }

    /// <summary>
    /// s3rver 3.7 answers a delimited listing with no CommonPrefix for a "directory" holding only
    /// deeper keys (prefix=imagenet/ lists nothing, and the root omits imagenet/), so every S3
    /// client would see an empty tree. Zero-byte "dir/" marker objects (what the S3 console and
    /// s3fs create) for the directories that hold no object directly make those listings right.
    /// </summary>
    private static void PutDirectoryMarkers(AmazonS3Client client, Dataset data)
    {
        var direct = new HashSet<string>(StringComparer.Ordinal);
        var all = new HashSet<string>(StringComparer.Ordinal);
        foreach (DataFile file in data.AllFiles)
        {
            string dir = Path.GetDirectoryName(file.RelativePath)!.Replace('\\', '/');
            direct.Add(dir);
            for (string d = dir; d.Length > 0; d = Path.GetDirectoryName(d)?.Replace('\\', '/') ?? "")
            {
                all.Add(d);
            }
        }
        foreach (string dir in all.Where(d => !direct.Contains(d)))
        {
            // s3fs takes a marker for a directory only with this content type (the one it writes itself).
            client.PutObjectAsync(new PutObjectRequest { BucketName = Bucket, Key = dir + "/", ContentBody = "", ContentType = "application/x-directory", UseChunkEncoding = false })
                .GetAwaiter().GetResult();
        }
    }

    public void Dispose() => _process.Dispose();
}
