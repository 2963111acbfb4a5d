using CsiCache.Controller;
using CsiCache.Csi;
using CsiCache.Datasets;
using CsiCache.Node;
using CsiCache.Node.Staging;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Serilog;

namespace CsiCache.Cli.Hosting;

/// <summary>Which CSI services one plugin process serves.</summary>
internal enum PluginMode
{
    Controller,
    Node,
    All,
}

/// <summary>Everything a plugin process is started with, validated once.</summary>
internal sealed record PluginOptions(
    PluginMode Mode,
    CsiEndpoint Endpoint,
    string DriverName,
    string? NodeId,
    string? StateDirectory,
    string? LocalDirectory,
    DatasetHostOptions? Datasets = null);

/// <summary>
/// Kestrel on the CSI unix socket, HTTP/2 only (gRPC needs it and the socket has no TLS to
/// negotiate with), our interceptor on every call, and the services the mode asks for.
/// </summary>
internal static class PluginHost
{
    public static WebApplication Build(PluginOptions options, Serilog.ILogger logger)
    {
        options.Endpoint.PrepareForListen();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddSerilog(logger, dispose: false);
        builder.WebHost.ConfigureKestrel(k =>
            k.ListenUnixSocket(options.Endpoint.SocketPath, o =>
            {
                o.Protocols = HttpProtocols.Http2;
                // Clients that dial a bare socket path send it as :authority; Kestrel would refuse them.
                UnixSocketAuthority.Use(o);
            }));
        // In-flight calls get this long to finish after SIGTERM; kubelet retries whatever is cut short.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(25));
        builder.Services.AddGrpc(o =>
        {
            o.Interceptors.Add<CsiCallInterceptor>();
            o.EnableDetailedErrors = false;
        });

        var servesNode = options.Mode is PluginMode.Node or PluginMode.All;
        builder.Services.AddSingleton(new PluginIdentity(options.DriverName, Version, ServesController: true, options.StateDirectory));
        builder.Services.AddSingleton<VolumeLocks>();
        builder.Services.AddSingleton(new DatasetVolumeStore(
            options.StateDirectory is null ? null : Path.Combine(options.StateDirectory, "volumes")));

        if (servesNode)
        {
            var nodeOptions = new NodeOptions(options.NodeId!, options.StateDirectory!, options.LocalDirectory!);
            builder.Services.AddSingleton(nodeOptions);
            builder.Services.AddSingleton(new NodeState(options.StateDirectory!));
            builder.Services.AddSingleton(sp => new LocalVolumeStore(
                nodeOptions.LocalDirectory, nodeOptions.NodeId, sp.GetRequiredService<NodeState>()));
            if (options.Datasets is { } datasetOptions)
            {
                // One host per node: every dataset volume on this node shares its cache and memory budget.
                // The container owns both and disposes them in reverse order when the app is disposed:
                // the stager stops (unmounts) every session, then the host closes the cache.
                builder.Services.AddSingleton(sp => new DatasetHost(datasetOptions, sp.GetRequiredService<ILoggerFactory>()));
                builder.Services.AddSingleton(sp => new FuseDatasetStager(
                    sp.GetRequiredService<DatasetHost>(), SessionDirectory(options.StateDirectory!),
                    sp.GetRequiredService<ILogger<FuseDatasetStager>>()));
            }

            builder.Services.AddSingleton(sp =>
            {
                var state = sp.GetRequiredService<NodeState>();
                var logger = sp.GetRequiredService<ILogger<NodeService>>();
                // Before the node service reconciles: a dataset staged by a plugin that died is a
                // FUSE mount with no server. Unmounted here, its record is dropped by the
                // reconcile and kubelet's next NodeStageVolume mounts it afresh.
                foreach (var path in StaleDatasetMounts.Cleanup(state).Concat(StaleDatasetMounts.CleanupUnder(SessionDirectory(options.StateDirectory!))))
                {
                    PluginHostLog.StaleDatasetMount(logger, path);
                }

                return new NodeService(
                    nodeOptions,
                    state,
                    sp.GetRequiredService<LocalVolumeStore>(),
                    sp.GetService<FuseDatasetStager>(),
                    sp.GetRequiredService<VolumeLocks>(),
                    logger);
            });
        }

        builder.Services.AddSingleton(sp => new ControllerService(
            sp.GetRequiredService<DatasetVolumeStore>(),
            servesNode ? sp.GetRequiredService<LocalVolumeStore>() : null,
            sp.GetRequiredService<VolumeLocks>()));

        var app = builder.Build();
        app.MapGrpcService<IdentityService>();
        app.MapGrpcService<ControllerService>();
        if (servesNode)
        {
            app.MapGrpcService<NodeService>();
        }

        return app;
    }

    /// <summary>Serves until SIGTERM/SIGINT (or <paramref name="ct"/>), then drains and removes the socket.</summary>
    public static async Task<int> RunAsync(PluginOptions options, Serilog.ILogger logger, CancellationToken ct)
    {
        await using var app = Build(options, logger);
        // Constructing the node service reconciles its state with the mount table; do it before serving.
        if (options.Mode is PluginMode.Node or PluginMode.All)
        {
            app.Services.GetRequiredService<NodeService>();
        }

        await app.StartAsync(ct);
        options.Endpoint.RestrictPermissions();
        logger.Information("csicache {Mode} {Version} serving {Endpoint} as driver {Driver}",
            options.Mode.ToString().ToLowerInvariant(), Version, options.Endpoint, options.DriverName);
        try
        {
            await app.WaitForShutdownAsync(ct);
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            // Unmount every dataset now, while we can still log it; the container would otherwise do it silently at dispose.
            await StopDatasetsAsync(app, logger);
            File.Delete(options.Endpoint.SocketPath);
            logger.Information("csicache stopped");
        }

        return 0;
    }

    /// <summary>Where the node's dataset FUSE sessions are mounted; volumes' staging paths are bind mounts of these.</summary>
    public static string SessionDirectory(string stateDirectory) => Path.Combine(stateDirectory, "sessions");

    /// <summary>Stops every dataset session of a built plugin (idempotent); the host closes when the app is disposed.</summary>
    public static async Task StopDatasetsAsync(WebApplication app, Serilog.ILogger logger)
    {
        if (app.Services.GetService<FuseDatasetStager>() is { } stager)
        {
            var count = stager.Count;
            await stager.DisposeAsync();
            if (count > 0)
            {
                logger.Information("stopped {Count} dataset session(s)", count);
            }
        }
    }

    public static string Version =>
        typeof(PluginHost).Assembly
            .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>()
            .FirstOrDefault()?.InformationalVersion.Split('+')[0] ?? "0.0.0";
}

internal static partial class PluginHostLog
{
    [LoggerMessage(EventId = 20, Level = LogLevel.Warning,
        Message = "removed a dead FUSE mount at {StagingPath}: its dataset session died with an earlier plugin; the next NodeStageVolume mounts it again")]
    public static partial void StaleDatasetMount(Microsoft.Extensions.Logging.ILogger logger, string stagingPath);
}
