using System.Diagnostics;
using System.Globalization;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace CsiCache.EndToEnd;

/// <summary>
/// A real S3-compatible server: s3rver (tests/s3rver, installed by scripts/install-test-deps.sh)
/// on 127.0.0.1 with a random port, a temporary data directory and credentials of the test's
/// choosing (the well-known S3RVER key is revoked, so an unknown access key id fails with 403
/// InvalidAccessKeyId as on S3; s3rver does not verify SigV4 signatures, so a wrong secret
/// alone is accepted; and with a delimiter it omits a common prefix that holds only deeper
/// prefixes, e.g. <c>train/</c> over <c>train/a/x</c>, which real S3 lists, so S3 test datasets
/// keep objects one directory deep). Every
/// request it answers is counted, so a test can prove a read came from the node cache.
/// </summary>
public sealed class S3Server : IAsyncDisposable
{
    private readonly List<string> _requests = [];
    private readonly string _directory;
    private Process? _process;

    private S3Server(string directory, string accessKeyId, string secretAccessKey)
    {
        _directory = directory;
        AccessKeyId = accessKeyId;
        SecretAccessKey = secretAccessKey;
    }

    public string AccessKeyId { get; }
    public string SecretAccessKey { get; }
    public Uri Endpoint { get; private set; } = null!;
    public AmazonS3Client Client { get; private set; } = null!;

    /// <summary>How many requests touched <paramref name="bucket"/> so far.</summary>
    public int RequestsFor(string bucket)
    {
        lock (_requests)
        {
            return _requests.Count(r => r.Split(' ')[1].TrimStart('/').Split('/', '?')[0] == bucket);
        }
    }

    /// <summary>
    /// <see cref="RequestsFor"/> once it has stopped moving for <paramref name="quiet"/> (at most
    /// 15 s): s3rver's request lines reach us through a pipe and an event thread, so under load a
    /// request can be counted a while after it was answered. Counting a window of requests needs
    /// both ends settled, or the last requests before it are counted inside it.
    /// </summary>
    public async Task<int> SettledRequestsForAsync(string bucket, TimeSpan quiet, CancellationToken ct)
    {
        int count = RequestsFor(bucket);
        DateTime stableSince = DateTime.UtcNow;
        DateTime deadline = DateTime.UtcNow.AddSeconds(15);
        while (DateTime.UtcNow - stableSince < quiet && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, ct);
            int now = RequestsFor(bucket);
            if (now != count)
            {
                (count, stableSince) = (now, DateTime.UtcNow);
            }
        }
        return count;
    }

    public static async Task<S3Server> StartAsync()
    {
        var modules = Path.Combine(RepositoryRoot(), "tests", "s3rver", "node_modules");
        if (!Directory.Exists(Path.Combine(modules, "s3rver")))
        {
            throw new InvalidOperationException(
                $"s3rver is not installed at {modules}; run scripts/install-test-deps.sh (npm ci --prefix tests/s3rver)");
        }

        // Unique credentials per server: the test can then prove they never reach the plugin's log.
        var server = new S3Server(Directory.CreateTempSubdirectory("csicache-s3rver-").FullName,
            "AKIA" + Guid.NewGuid().ToString("N")[..16].ToUpperInvariant(), "sk-" + Guid.NewGuid().ToString("N"));
        try
        {
            await server.StartProcessAsync(modules);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    private async Task StartProcessAsync(string modules)
    {
        var start = new ProcessStartInfo("node")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "s3rver-launch.js"), modules, _directory, AccessKeyId, SecretAccessKey })
        {
            start.ArgumentList.Add(arg);
        }

        var port = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var errors = new System.Text.StringBuilder();
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                port.TrySetException(new InvalidOperationException($"s3rver exited: {errors}"));
            }
            else if (e.Data.StartsWith("listening ", StringComparison.Ordinal))
            {
                port.TrySetResult(int.Parse(e.Data["listening ".Length..], CultureInfo.InvariantCulture));
            }
            else if (e.Data.StartsWith("request ", StringComparison.Ordinal))
            {
                lock (_requests)
                {
                    _requests.Add(e.Data["request ".Length..]);
                }
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            lock (errors)
            {
                errors.AppendLine(e.Data);
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        Endpoint = new Uri($"http://127.0.0.1:{await port.Task.WaitAsync(TimeSpan.FromSeconds(30))}/");
        Client = new AmazonS3Client(new BasicAWSCredentials(AccessKeyId, SecretAccessKey), new AmazonS3Config
        {
            ServiceURL = Endpoint.AbsoluteUri,
            ForcePathStyle = true,
            AuthenticationRegion = "us-east-1",
            // s3rver predates the SDK's default trailing checksums.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        });
    }

    /// <summary>Creates <paramref name="bucket"/> and uploads every file under <paramref name="directory"/> as prefix + relative path.</summary>
    public async Task UploadAsync(string bucket, string prefix, string directory)
    {
        await Client.PutBucketAsync(bucket);
        var files = Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).ToList();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (file, ct) =>
            await Client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = bucket,
                Key = prefix + Path.GetRelativePath(directory, file),
                FilePath = file,
                // Over plain HTTP the SDK would stream aws-chunked bodies, which s3rver stores
                // verbatim (chunk signatures and all); one signed body is what a real upload stores.
                UseChunkEncoding = false,
            }, ct));
    }

    public async ValueTask DisposeAsync()
    {
        Client?.Dispose();
        if (_process is not null)
        {
            if (!_process.HasExited)
            {
                _process.StandardInput.Close();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    await _process.WaitForExitAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill();
                    await _process.WaitForExitAsync();
                }
            }

            _process.Dispose();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory left behind is harmless.
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "CsiCache.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("cannot find the repository root (CsiCache.sln) above " + AppContext.BaseDirectory);
    }
}
