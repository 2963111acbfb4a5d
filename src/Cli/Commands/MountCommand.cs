using System.Collections;
using System.CommandLine;
using CsiCache.Cli.Hosting;
using CsiCache.Datasets;
using Serilog.Events;
using Serilog.Extensions.Logging;

namespace CsiCache.Cli.Commands;

/// <summary>
/// <c>csicache mount SOURCE MOUNTPOINT</c>: the dataset filesystem without Kubernetes, in the
/// foreground. One <see cref="DatasetHost"/> and one mount; Ctrl-C or SIGTERM unmounts.
/// </summary>
internal static class MountCommand
{
    /// <summary>Exit codes: 0 unmounted on request, 1 failed (origin, mount, privileges), 2 bad arguments.</summary>
    private const int Failed = 1;
    private const int BadArguments = 2;

    public static Command Create()
    {
        var command = new Command("mount",
            "Mount a dataset (s3://, http(s)://, file://) read-only at MOUNTPOINT through the node-local cache, in the "
            + "foreground; Ctrl-C or SIGTERM unmounts. Needs root: it mounts a FUSE filesystem.");
        var source = new Argument<string>("SOURCE") { Description = "dataset source: s3://bucket/prefix/, https://host/dir/, file:///abs/path" };
        var mountPoint = new Argument<string>("MOUNTPOINT") { Description = "where to mount (created when missing)" };
        var cacheDir = new Option<string>("--cache-dir")
        {
            Description = "chunk cache directory (shared by every mount of the same dataset)",
            DefaultValueFactory = _ => "/var/cache/csicache",
        };
        var cacheSize = new Option<string>("--cache-size") { Description = "cache quota, e.g. 10Gi", DefaultValueFactory = _ => "10Gi" };
        var memoryLimit = new Option<string>("--memory-limit")
        {
            Description = "bound on data buffers in flight, e.g. 512Mi",
            DefaultValueFactory = _ => "512Mi",
        };
        var chunkSize = new Option<string>("--chunk-size")
        {
            Description = "cache chunk size, 1Mi to 4Mi: smaller fetches less for random reads, larger makes fewer requests for sequential ones",
            DefaultValueFactory = _ => "4Mi",
        };
        var memoryCacheDir = new Option<string>("--memory-cache-dir") { Description = "tmpfs directory for --param cacheMedium=memory" };
        var parameters = new Option<string[]>("--param", "-p")
        {
            Description = "volume parameter key=value (subPath, cacheMedium, prefetch, refresh, endpoint, region, pathStyle); repeatable",
        };
        var secretEnvPrefix = new Option<string>("--secret-env-prefix")
        {
            Description = "take secrets from environment variables with this prefix, e.g. with CSICACHE_SECRET_: "
                + "CSICACHE_SECRET_accessKeyId, CSICACHE_SECRET_secretAccessKey (never pass secrets as arguments)",
        };
        var originTimeout = new Option<string>("--origin-timeout")
        {
            Description = "limit on one origin request, e.g. 30s (retried up to --origin-retries times)",
            DefaultValueFactory = _ => "30s",
        };
        var originRetries = new Option<int>("--origin-retries") { Description = "retries of a failed origin request", DefaultValueFactory = _ => 3 };
        var logLevel = new Option<LogEventLevel>("--log-level") { Description = "minimum log level", DefaultValueFactory = _ => LogEventLevel.Information };
        var logFormat = new Option<string>("--log-format") { Description = "log format: text or json", DefaultValueFactory = _ => "text" };
        logFormat.AcceptOnlyFromAmong("text", "json");

        command.Arguments.Add(source);
        command.Arguments.Add(mountPoint);
        foreach (Option option in new Option[] { cacheDir, cacheSize, chunkSize, memoryLimit, memoryCacheDir, parameters, secretEnvPrefix, originTimeout, originRetries, logLevel, logFormat })
        {
            command.Options.Add(option);
        }

        command.SetAction(async (ParseResult parse, CancellationToken ct) =>
        {
            if (!Environment.IsPrivilegedProcess)
            {
                await Console.Error.WriteLineAsync("csicache mount needs root: mounting a FUSE filesystem takes CAP_SYS_ADMIN (run it with sudo)");
                return Failed;
            }

            DatasetHostOptions hostOptions;
            Dictionary<string, string> volumeParameters;
            try
            {
                volumeParameters = ParseParameters(parse.GetValue(parameters) ?? []);
                long chunk = ParseSize("--chunk-size", parse.GetValue(chunkSize)!);
                if (chunk is < CsiCache.Cache.ChunkCacheOptions.MinChunkSize or > CsiCache.Cache.ChunkCacheOptions.MaxChunkSize)
                {
                    throw new ArgumentException($"--chunk-size must be between 1Mi and 4Mi, got {parse.GetValue(chunkSize)}");
                }
                hostOptions = new DatasetHostOptions
                {
                    CacheDirectory = Path.GetFullPath(parse.GetValue(cacheDir)!),
                    CacheQuotaBytes = ParseSize("--cache-size", parse.GetValue(cacheSize)!),
                    MemoryLimitBytes = ParseSize("--memory-limit", parse.GetValue(memoryLimit)!),
                    ChunkSize = (int)chunk,
                    MemoryCacheDirectory = parse.GetValue(memoryCacheDir) is { Length: > 0 } m ? Path.GetFullPath(m) : null,
                    OriginTimeout = ParseDuration("--origin-timeout", parse.GetValue(originTimeout)!),
                    OriginRetries = Math.Max(0, parse.GetValue(originRetries)),
                };
            }
            catch (ArgumentException e)
            {
                await Console.Error.WriteLineAsync("csicache mount: " + e.Message);
                return BadArguments;
            }
            Dictionary<string, string> secrets = SecretsFromEnvironment(parse.GetValue(secretEnvPrefix));
            string target = Path.GetFullPath(parse.GetValue(mountPoint)!);

            var logger = Logging.Create(parse.GetValue(logFormat)!, parse.GetValue(logLevel));
            try
            {
                using var loggers = new SerilogLoggerFactory(logger);
                DatasetHost host;
                try
                {
                    host = new DatasetHost(hostOptions, loggers);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
                {
                    await Console.Error.WriteLineAsync($"csicache mount: cannot open the cache at {hostOptions.CacheDirectory}: {e.Message}");
                    return Failed;
                }

                await using (host)
                {
                    DatasetMount mount;
                    try
                    {
                        mount = await host.MountAsync(new DatasetMountOptions(parse.GetValue(source)!, volumeParameters, secrets, target), ct);
                    }
                    catch (DatasetException e)
                    {
                        await Console.Error.WriteLineAsync($"csicache mount: {e.Message}");
                        return e.Kind == DatasetErrorKind.InvalidSource ? BadArguments : Failed;
                    }
                    catch (OperationCanceledException)
                    {
                        return Failed; // interrupted before the mount was up; nothing is mounted
                    }

                    await Console.Out.WriteLineAsync($"mounted {mount.Source} at {mount.MountPoint} (Ctrl-C to unmount)");
                    bool lost = await WaitAsync(mount, ct);
                    await mount.StopAsync();
                    DatasetMountStats stats = mount.GetStats();
                    await Console.Out.WriteLineAsync(
                        $"unmounted {mount.MountPoint}: served {ByteSize.Format(stats.BytesServed)}, " +
                        $"{stats.CacheHits} cache hits, {stats.CacheMisses} misses, {stats.OriginRequests} origin requests ({ByteSize.Format(stats.OriginBytes)})");
                    if (lost)
                    {
                        await Console.Error.WriteLineAsync($"csicache mount: {mount.MountPoint} was unmounted from outside or its session ended");
                        return Failed;
                    }
                    return 0;
                }
            }
            finally
            {
                (logger as IDisposable)?.Dispose();
            }
        });
        return command;
    }

    /// <summary>Waits for Ctrl-C/SIGTERM (false) or for the mount to go away by itself (true).</summary>
    private static async Task<bool> WaitAsync(DatasetMount mount, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            if (!mount.IsAlive)
            {
                return true;
            }
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        return false;
    }

    private static Dictionary<string, string> ParseParameters(string[] values)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string value in values)
        {
            int equals = value.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw new ArgumentException($"--param '{value}' must be key=value, e.g. --param subPath=train");
            }
            result[value[..equals].Trim()] = value[(equals + 1)..].Trim();
        }
        return result;
    }

    private static long ParseSize(string option, string value) =>
        ByteSize.TryParse(value, out long bytes, out string? error) && bytes > 0
            ? bytes
            : throw new ArgumentException($"{option}: {error ?? "must be more than 0"}");

    private static TimeSpan ParseDuration(string option, string value)
    {
        string v = value.Trim();
        double scale = v.EndsWith("ms", StringComparison.Ordinal) ? 0.001 : v.EndsWith('s') ? 1 : v.EndsWith('m') ? 60 : 0;
        string number = scale == 0.001 ? v[..^2] : scale > 0 ? v[..^1] : v;
        if (scale == 0)
        {
            scale = 1; // plain seconds
        }
        return double.TryParse(number, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double amount) && amount > 0
            ? TimeSpan.FromSeconds(amount * scale)
            : throw new ArgumentException($"{option}: '{value}' is not a duration such as 500ms, 30s or 2m");
    }

    /// <summary>Secrets from the environment, so they never appear in argv (visible in ps) or shell history.</summary>
    private static Dictionary<string, string> SecretsFromEnvironment(string? prefix)
    {
        var secrets = new Dictionary<string, string>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(prefix))
        {
            return secrets;
        }
        foreach (DictionaryEntry variable in Environment.GetEnvironmentVariables())
        {
            if (variable.Key is string name && name.StartsWith(prefix, StringComparison.Ordinal) && name.Length > prefix.Length && variable.Value is string value)
            {
                secrets[name[prefix.Length..]] = value;
            }
        }
        return secrets;
    }
}
