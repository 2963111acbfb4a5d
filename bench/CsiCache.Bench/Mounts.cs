using System.Diagnostics;

namespace CsiCache.Bench;

/// <summary>Which origin a mounted tool reads from.</summary>
internal enum OriginKind
{
    Http,
    S3,
}

/// <summary>The endpoints of the running origins, handed to the tools.</summary>
internal sealed record Origins(Uri? Http, Uri? S3Endpoint);

/// <summary>A FUSE-mounting tool under test: how to start it over an origin with a given cache directory.</summary>
internal abstract class MountTool(string name, OriginKind origin)
{
    public string Name { get; } = name;

    public OriginKind Origin { get; } = origin;

    public string Label => $"{Name} ({(Origin == OriginKind.Http ? "http/nginx" : "s3/s3rver")})";

    /// <summary>Starts the daemon in the foreground; the mount appears some time later.</summary>
    public abstract ChildProcess Start(Origins origins, string mountPoint, string cacheDirectory, string scratch, string logPath);
}

/// <summary>
/// <c>csicache mount</c>, the binary built from this repository. Stopped with SIGTERM, not SIGINT: a
/// process started from a background job of a non-interactive shell inherits SIGINT ignored.
/// </summary>
internal sealed class CsiCacheTool(OriginKind origin, string binary, string cacheSize, string memoryLimit, bool passthrough = false)
    : MountTool(passthrough ? "csicache-pt" : "csicache", origin)
{
    public string MemoryLimit => memoryLimit;

    public override ChildProcess Start(Origins origins, string mountPoint, string cacheDirectory, string scratch, string logPath)
    {
        var args = new List<string>();
        string file = binary;
        if (binary.EndsWith(".dll", StringComparison.Ordinal))
        {
            file = "dotnet";
            args.Add(binary);
        }
        // CSICACHE_PASSTHROUGH=1 is Always (OPEN kept for every file, passthrough for those cached
        // whole); "" is Auto, the default, where the first file a mount opens picks passthrough or
        // zero-message opens. The "csicache-pt" tool measures Always beside the default.
        var env = new Dictionary<string, string> { ["CSICACHE_PASSTHROUGH"] = passthrough ? "1" : "" };
        args.Add("mount");
        if (Origin == OriginKind.Http)
        {
            args.Add(origins.Http!.AbsoluteUri);
        }
        else
        {
            args.AddRange([$"s3://{S3rverServer.Bucket}/", "--param", "endpoint=" + origins.S3Endpoint!.AbsoluteUri, "--param", "pathStyle=true", "--param", "region=us-east-1",
                "--secret-env-prefix", "CSICACHE_SECRET_"]);
            env["CSICACHE_SECRET_accessKeyId"] = S3rverServer.AccessKey;
            env["CSICACHE_SECRET_secretAccessKey"] = S3rverServer.SecretKey;
        }
        args.AddRange([mountPoint, "--cache-dir", cacheDirectory, "--cache-size", cacheSize, "--memory-limit", memoryLimit, "--log-level", "Warning"]);
        return ChildProcess.Start(file, args, logPath, stopSignal: "TERM", environment: env);
    }
}

/// <summary><c>rclone mount</c> with the full VFS cache: rclone's closest equivalent of a read-through disk cache.</summary>
internal sealed class RcloneTool(OriginKind origin) : MountTool("rclone", origin)
{
    public override ChildProcess Start(Origins origins, string mountPoint, string cacheDirectory, string scratch, string logPath)
    {
        var env = new Dictionary<string, string>();
        var args = new List<string> { "mount" };
        if (Origin == OriginKind.Http)
        {
            args.AddRange([":http:", mountPoint, "--http-url", origins.Http!.AbsoluteUri]);
        }
        else
        {
            args.AddRange([$":s3:{S3rverServer.Bucket}", mountPoint]);
            env["RCLONE_S3_PROVIDER"] = "Other";
            env["RCLONE_S3_ENDPOINT"] = origins.S3Endpoint!.AbsoluteUri;
            env["RCLONE_S3_ACCESS_KEY_ID"] = S3rverServer.AccessKey;
            env["RCLONE_S3_SECRET_ACCESS_KEY"] = S3rverServer.SecretKey;
            env["RCLONE_S3_REGION"] = "us-east-1";
            env["RCLONE_S3_FORCE_PATH_STYLE"] = "true";
            // rclone 1.60's S3 backend fails to start ("unable to load custom CA bundle") when
            // AWS_CA_BUNDLE is set, as it is on this machine; the endpoint is plain http anyway.
            env["AWS_CA_BUNDLE"] = "";
        }
        // Read-only and long metadata lifetimes, as csicache assumes an immutable dataset while mounted.
        args.AddRange(["--vfs-cache-mode", "full", "--cache-dir", cacheDirectory, "--vfs-cache-max-size", "200G", "--read-only",
            "--dir-cache-time", "1h", "--attr-timeout", "1h", "--log-level", "NOTICE", "--config", "/dev/null"]);
        return ChildProcess.Start("rclone", args, logPath, stopSignal: "TERM", environment: env);
    }
}

/// <summary>s3fs-fuse with its local file cache (use_cache) over the S3 origin.</summary>
internal sealed class S3fsTool() : MountTool("s3fs", OriginKind.S3)
{
    public override ChildProcess Start(Origins origins, string mountPoint, string cacheDirectory, string scratch, string logPath)
    {
        string passwd = Path.Join(scratch, "s3fs.passwd");
        File.WriteAllText(passwd, $"{S3rverServer.AccessKey}:{S3rverServer.SecretKey}\n");
        File.SetUnixFileMode(passwd, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        string url = origins.S3Endpoint!.AbsoluteUri.TrimEnd('/');
        // kernel_cache keeps the page cache across opens (csicache's FOPEN_KEEP_CACHE), ro as a dataset is.
        return ChildProcess.Start("s3fs", [S3rverServer.Bucket, mountPoint, "-f", "-o", "url=" + url, "-o", "use_path_request_style", "-o", "endpoint=us-east-1",
            "-o", "passwd_file=" + passwd, "-o", "use_cache=" + cacheDirectory, "-o", "ro", "-o", "kernel_cache", "-o", "dbglevel=err"], logPath, stopSignal: "TERM");
    }
}

/// <summary>
/// One mount of one tool with a cache directory of its own. Dispose stops the daemon (it unmounts
/// on SIGINT/SIGTERM) and, should the mount outlive it, detaches it with umount -l.
/// </summary>
internal sealed class MountSession : IDisposable
{
    private readonly ChildProcess _process;
    private int _disposedFlag;

    private MountSession(ChildProcess process, string mountPoint)
    {
        _process = process;
        MountPoint = mountPoint;
    }

    public string MountPoint { get; }

    public ChildProcess Process => _process;

    /// <summary>Peak RSS of the daemon, read when it was stopped (or now, if still running).</summary>
    public long PeakRssBytes { get; private set; }

    public double CpuSeconds { get; private set; }

    public static MountSession Start(MountTool tool, Origins origins, string mountPoint, string cacheDirectory, string scratch, string logPath)
    {
        Unmount(mountPoint);
        Directory.CreateDirectory(mountPoint);
        Directory.CreateDirectory(cacheDirectory);
        ChildProcess process = tool.Start(origins, mountPoint, cacheDirectory, scratch, logPath);
        var session = new MountSession(process, mountPoint);
        Cleanup.Register(session);
        var clock = Stopwatch.StartNew();
        while (!IsMounted(mountPoint))
        {
            if (process.HasExited || clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                string tail = process.Tail;
                session.Dispose();
                throw new InvalidOperationException($"{tool.Label} did not mount {mountPoint}: {tail}");
            }
            Thread.Sleep(50);
        }
        return session;
    }

    public static bool IsMounted(string mountPoint)
    {
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            string[] fields = line.Split(' ');
            if (fields.Length > 4 && fields[4] == mountPoint)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Detaches whatever is mounted at <paramref name="mountPoint"/> (lazily, so a busy mount cannot block us).</summary>
    public static void Unmount(string mountPoint)
    {
        for (int i = 0; i < 5 && IsMounted(mountPoint); i++)
        {
            ChildProcess.Run("umount", "-l", mountPoint);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposedFlag, 1) != 0)
        {
            return;
        }
        if (!_process.HasExited)
        {
            PeakRssBytes = _process.PeakRssBytes();
            CpuSeconds = _process.CpuSeconds();
        }
        _process.Dispose();
        Unmount(MountPoint);
        Cleanup.Unregister(this);
    }
}
