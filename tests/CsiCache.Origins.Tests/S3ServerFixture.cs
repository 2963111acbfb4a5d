using System.Diagnostics;
using System.Net;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace CsiCache.Origins.Tests;

/// <summary>
/// A real S3-compatible server for the tests: the npm package s3rver, started with
/// tests/s3rver/start.js on 127.0.0.1 and a port the OS picks, storing into a temp directory.
/// s3rver is looked up in $CSICACHE_S3RVER_DIR, else in the repository's tests/s3rver (found by
/// walking up to CsiCache.sln). Missing node or s3rver fails the tests with the command to run:
/// CI installs it with <c>npm ci --prefix tests/s3rver</c>.
/// </summary>
public sealed class S3ServerFixture : IAsyncLifetime
{
    public const string Bucket = "datasets";
    /// <summary>s3rver's built-in account.</summary>
    public const string AccessKeyId = "S3RVER";
    public const string SecretAccessKey = "S3RVER";
    public const int ManyCount = 1100;

    private readonly TempDir _data = new("csicache-s3rver-");
    private Process? _node;

    public Uri Endpoint { get; private set; } = null!;

    public AmazonS3Client Client { get; private set; } = null!;

    public Dictionary<string, byte[]> Objects { get; } = new();

    public Dictionary<string, string> ETags { get; } = new();

    public async ValueTask InitializeAsync()
    {
        var (script, nodePath) = FindS3rver();
        var psi = new ProcessStartInfo("node")
        {
            RedirectStandardInput = true, // start.js exits when this closes, even if we die
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // s3rver 3.7 encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps
        // in its legacy provider; without it every second page is a 500.
        psi.ArgumentList.Add("--openssl-legacy-provider");
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add(_data.Path);
        psi.Environment["NODE_PATH"] = nodePath;
        try
        {
            _node = Process.Start(psi) ?? throw new InvalidOperationException("node did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("The S3 tests need Node.js ('node' on PATH) to run s3rver: install nodejs, then `npm ci --prefix tests/s3rver`.", e);
        }
        var stderr = _node.StandardError.ReadToEndAsync();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        string? line;
        do
        {
            line = await _node.StandardOutput.ReadLineAsync(timeout.Token);
        }
        while (line is not null && !line.StartsWith("LISTENING ", StringComparison.Ordinal));
        if (line is null)
            throw new InvalidOperationException("s3rver exited before listening: " + await stderr);
        Endpoint = new Uri($"http://127.0.0.1:{int.Parse(line["LISTENING ".Length..])}/");

        Client = CreateClient(AccessKeyId, SecretAccessKey);
        await Client.PutBucketAsync(Bucket);
        await SeedAsync();
    }

    private static (string Script, string NodePath) FindS3rver()
    {
        string? repoDir = null;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Join(d.FullName, "CsiCache.sln")))
            {
                repoDir = Path.Join(d.FullName, "tests", "s3rver");
                break;
            }
        }
        string? env = Environment.GetEnvironmentVariable("CSICACHE_S3RVER_DIR");
        string? dir = !string.IsNullOrEmpty(env) ? env : repoDir;
        if (dir is null || !Directory.Exists(Path.Join(dir, "node_modules", "s3rver")))
            throw new InvalidOperationException(
                $"s3rver is not installed (looked in {(dir ?? "<no CsiCache.sln above the test binaries>")}/node_modules/s3rver): " +
                "run `npm ci --prefix tests/s3rver` in the repository, or set CSICACHE_S3RVER_DIR to a folder holding node_modules/s3rver.");
        string script = File.Exists(Path.Join(dir, "start.js")) ? Path.Join(dir, "start.js")
            : repoDir is not null && File.Exists(Path.Join(repoDir, "start.js")) ? Path.Join(repoDir, "start.js")
            : throw new InvalidOperationException($"tests/s3rver/start.js not found next to {dir}");
        return (script, Path.Join(dir, "node_modules"));
    }

    public AmazonS3Client CreateClient(string keyId, string secret) => new(new BasicAWSCredentials(keyId, secret), new AmazonS3Config
    {
        ServiceURL = Endpoint.AbsoluteUri,
        ForcePathStyle = true,
        AuthenticationRegion = "us-east-1",
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
    });

    public async Task<string> PutAsync(string key, byte[] content)
    {
        var response = await Client.PutObjectAsync(new PutObjectRequest
        {
            BucketName = Bucket,
            Key = key,
            InputStream = new MemoryStream(content),
            UseChunkEncoding = false,
        });
        lock (Objects)
        {
            Objects[key] = content;
            ETags[key] = response.ETag;
        }
        return response.ETag;
    }

    private async Task SeedAsync()
    {
        var seed = new List<(string, byte[])>
        {
            ("top.bin", TestData.Bytes(1000, 50)),
            ("nested/b.txt", TestData.Bytes(10, 51)),
            ("nested/a/file.txt", TestData.Bytes(20, 52)),
            ("nested/a/b/deep.bin", TestData.Bytes(30, 53)),
            ("big/blob.bin", TestData.Bytes((5 << 20) + 123, 54)),
            ("folder-marker/", []),
            ("folder-marker/x.txt", TestData.Bytes(5, 55)),
        };
        for (int i = 0; i < HttpServerFixture.OddNames.Length; i++)
            seed.Add(("odd/" + HttpServerFixture.OddNames[i], TestData.Bytes(100 + i, 60 + i)));
        for (int i = 0; i < ManyCount; i++)
            seed.Add(($"many/item-{i:D5}", [(byte)i]));
        await Parallel.ForEachAsync(seed, new ParallelOptions { MaxDegreeOfParallelism = 16 },
            async (item, ct) => await PutAsync(item.Item1, item.Item2));
    }

    public async ValueTask DisposeAsync()
    {
        Client?.Dispose();
        if (_node is not null)
        {
            try
            {
                _node.StandardInput.Close();
                if (!_node.WaitForExit(TimeSpan.FromSeconds(5)))
                    _node.Kill(entireProcessTree: true);
                await _node.WaitForExitAsync();
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
            _node.Dispose();
        }
        _data.Dispose();
    }
}
