using System.CommandLine;
using CsiCache.Cli.Hosting;
using CsiCache.Controller;
using CsiCache.Csi;
using CsiCache.Datasets;
using CsiCache.Node;
using Serilog.Events;

namespace CsiCache.Cli.Commands;

/// <summary>The <c>csicache</c> command line: one binary, one subcommand per role.</summary>
internal static class CsiCacheCommand
{
    public static RootCommand Create()
    {
        var root = new RootCommand("csicache: a CSI driver serving cached datasets and local NVMe volumes");
        root.Subcommands.Add(Plugin(PluginMode.Controller, "controller",
            "Serve the CSI Identity and Controller services (dataset volumes)."));
        root.Subcommands.Add(Plugin(PluginMode.Node, "node",
            "Serve Identity, Node, and the Controller service for this node's local volumes."));
        root.Subcommands.Add(Plugin(PluginMode.All, "all",
            "Serve every CSI service on one socket (development, csi-sanity)."));
        root.Subcommands.Add(MountCommand.Create());
        root.Subcommands.Add(DemoCommand.Create());
        return root;
    }

    private static Command Plugin(PluginMode mode, string name, string description)
    {
        var command = new Command(name, description);
        var endpoint = new Option<string>("--endpoint")
        {
            Description = "CSI socket, unix:///path/csi.sock",
            Required = true,
        };
        var driverName = new Option<string>("--driver-name")
        {
            Description = "CSI driver name (must equal the CSIDriver object and every StorageClass provisioner)",
            DefaultValueFactory = _ => "csicache.dev",
        };
        var logFormat = new Option<string>("--log-format")
        {
            Description = "log format: text or json",
            DefaultValueFactory = _ => "text",
        };
        logFormat.AcceptOnlyFromAmong("text", "json");
        var logLevel = new Option<LogEventLevel>("--log-level")
        {
            Description = "minimum log level (Debug logs every request, secrets redacted)",
            DefaultValueFactory = _ => LogEventLevel.Information,
        };
        var needsNode = mode != PluginMode.Controller;
        var nodeId = new Option<string>("--node-id") { Description = "this node's name (the Kubernetes node name)", Required = needsNode };
        var stateDir = new Option<string>("--state-dir")
        {
            Description = "where the plugin records volumes it created, staged and published",
            Required = needsNode,
        };
        var localDir = new Option<string>("--local-dir") { Description = "where local volume images live (the node's NVMe)", Required = needsNode };
        var cacheDir = new Option<string>("--cache-dir")
        {
            Description = "node-wide dataset cache on disk (the node's NVMe); default: a 'cache' directory beside --state-dir",
        };
        var cacheSize = new Option<string>("--cache-size") { Description = "dataset cache quota, e.g. 100Gi", DefaultValueFactory = _ => "10Gi" };
        var memoryCacheDir = new Option<string>("--memory-cache-dir")
        {
            Description = "tmpfs root for cacheMedium: memory (its size is the memory cache's quota unless --memory-cache-size says otherwise)",
        };
        var memoryCacheSize = new Option<string>("--memory-cache-size") { Description = "memory cache quota, e.g. 4Gi" };
        var originTimeout = new Option<string>("--origin-timeout")
        {
            Description = "how long one origin request may take before it is retried (3 retries), e.g. 30s",
            DefaultValueFactory = _ => "30s",
        };
        var memoryLimit = new Option<string>("--memory-limit")
        {
            Description = "bound on the plugin's data buffers, e.g. 512Mi",
            DefaultValueFactory = _ => "512Mi",
        };

        command.Options.Add(endpoint);
        command.Options.Add(driverName);
        command.Options.Add(logFormat);
        command.Options.Add(logLevel);
        if (needsNode)
        {
            command.Options.Add(nodeId);
            command.Options.Add(localDir);
            command.Options.Add(cacheDir);
            command.Options.Add(cacheSize);
            command.Options.Add(memoryCacheDir);
            command.Options.Add(memoryCacheSize);
            command.Options.Add(memoryLimit);
            command.Options.Add(originTimeout);
        }

        command.Options.Add(stateDir);
        command.SetAction(async (parse, ct) =>
        {
            var logger = Logging.Create(parse.GetValue(logFormat)!, parse.GetValue(logLevel));
            try
            {
                var state = FullPathOrNull(parse.GetValue(stateDir));
                var options = new PluginOptions(
                    mode,
                    CsiEndpoint.Parse(parse.GetValue(endpoint)!),
                    parse.GetValue(driverName)!,
                    needsNode ? parse.GetValue(nodeId) : null,
                    state,
                    needsNode ? FullPathOrNull(parse.GetValue(localDir)) : null,
                    needsNode
                        ? DatasetOptions(state!, parse.GetValue(cacheDir), parse.GetValue(cacheSize)!,
                            parse.GetValue(memoryCacheDir), parse.GetValue(memoryCacheSize), parse.GetValue(memoryLimit)!)
                            with { OriginTimeout = DurationOption("--origin-timeout", parse.GetValue(originTimeout)!) }
                        : null);
                return await PluginHost.RunAsync(options, logger, ct);
            }
            catch (ArgumentException e)
            {
                logger.Error("{Message}", e.Message);
                return 2;
            }
            finally
            {
                (logger as IDisposable)?.Dispose();
            }
        });
        return command;
    }

    /// <summary>
    /// The node's dataset host settings. Without <c>--cache-dir</c> the cache goes beside the
    /// state directory (<c>/var/lib/csicache/state</c> → <c>/var/lib/csicache/cache</c>), so a
    /// development run needs no extra flag; a DaemonSet should point it at the node's NVMe.
    /// </summary>
    internal static DatasetHostOptions DatasetOptions(string stateDirectory, string? cacheDirectory, string cacheSize,
        string? memoryCacheDirectory, string? memoryCacheSize, string memoryLimit)
    {
        var cache = FullPathOrNull(cacheDirectory) ?? DefaultCacheDirectory(stateDirectory);
        var memoryDir = FullPathOrNull(memoryCacheDirectory);
        var options = new DatasetHostOptions
        {
            CacheDirectory = cache,
            CacheQuotaBytes = SizeOption("--cache-size", cacheSize),
            MemoryCacheDirectory = memoryDir,
            MemoryLimitBytes = SizeOption("--memory-limit", memoryLimit),
        };
        if (!string.IsNullOrEmpty(memoryCacheSize))
        {
            options = options with { MemoryCacheQuotaBytes = SizeOption("--memory-cache-size", memoryCacheSize) };
        }
        else if (memoryDir is not null && Directory.Exists(memoryDir))
        {
            // A tmpfs mounted for the memory cache is sized for it: its size is the quota.
            options = options with { MemoryCacheQuotaBytes = FileSystemUsage.Of(memoryDir).TotalBytes };
        }

        return options;
    }

    internal static string DefaultCacheDirectory(string stateDirectory)
    {
        var parent = Path.GetDirectoryName(MountTable.Normalise(stateDirectory));
        return string.IsNullOrEmpty(parent) || parent == "/" ? Path.Combine(stateDirectory, "cache") : Path.Combine(parent, "cache");
    }

    private static TimeSpan DurationOption(string name, string text) =>
        DatasetParameters.TryParseDuration(text, out var duration) && duration > TimeSpan.Zero
            ? duration
            : throw new ArgumentException($"{name}: '{text}' is not a positive duration (e.g. 30s, 2m)");

    private static long SizeOption(string name, string text)
    {
        try
        {
            var bytes = ByteSize.Parse(text);
            return bytes > 0 ? bytes : throw new ArgumentException($"{name} must be more than zero bytes, not '{text}'");
        }
        catch (FormatException)
        {
            throw new ArgumentException($"{name}: '{text}' is not a size (use bytes or 512Mi, 10Gi, 1G …)");
        }
    }

    private static string? FullPathOrNull(string? path) => string.IsNullOrEmpty(path) ? null : Path.GetFullPath(path);
}
