using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using CsiCache.Cli.Demo;
using CsiCache.Csi;
using Grpc.Net.Client;

namespace CsiCache.TestKit;

/// <summary>
/// A real <c>csicache all</c> process (every service on one unix socket) at Debug level, under a
/// temporary root that also holds its state, local and cache directories and kubelet's paths.
/// The conformance and end-to-end suites both drive the plugin through it, over the socket,
/// as kubelet does. Disposing stops it (SIGTERM: it unmounts its datasets) and then removes
/// whatever is still mounted or attached under the root, so a failed test leaves nothing
/// behind on the machine. Needs root (mounts, loop devices, FUSE): CI runs as root.
/// </summary>
public sealed class PluginProcess : IAsyncDisposable
{
    private readonly StringBuilder _log = new();
    private Process? _process;
    private GrpcChannel? _channel;

    private readonly string[] _extraArgs;

    private PluginProcess(string root, string[] extraArgs)
    {
        _extraArgs = extraArgs;
        Root = root;
        StateDir = Path.Combine(root, "state");
        LocalDir = Path.Combine(root, "local");
        CacheDir = Path.Combine(root, "cache");
        SocketPath = Path.Combine(root, "plugin", "csi.sock");
        Paths = new KubeletPaths(root);
        Directory.CreateDirectory(Path.GetDirectoryName(SocketPath)!);
    }

    public string Root { get; }
    public string StateDir { get; }
    public string LocalDir { get; }
    public string CacheDir { get; }
    public string SocketPath { get; }
    public string NodeId => "test-node";
    internal KubeletPaths Paths { get; }

    public global::Csi.V1.Identity.IdentityClient Identity { get; private set; } = null!;
    public global::Csi.V1.Controller.ControllerClient Controller { get; private set; } = null!;
    public global::Csi.V1.Node.NodeClient Node { get; private set; } = null!;

    /// <summary>Everything the plugin wrote to stdout and stderr, across restarts.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public static Task<PluginProcess> StartAsync(params string[] extraArgs) =>
        StartInAsync(Directory.CreateTempSubdirectory("csicache-test-").FullName, extraArgs);

    /// <summary>Starts the plugin under a root the caller prepared (e.g. with a stale socket in it).</summary>
    public static async Task<PluginProcess> StartInAsync(string root, params string[] extraArgs)
    {
        RequireRoot();
        var plugin = new PluginProcess(root, extraArgs);
        try
        {
            await plugin.StartProcessAsync();
        }
        catch
        {
            await plugin.DisposeAsync();
            throw;
        }

        return plugin;
    }

    /// <summary>Fails loudly when not root: these tests mount, and must not pass by doing nothing.</summary>
    public static void RequireRoot()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            throw new InvalidOperationException("these tests need root (FUSE, loop devices, bind mounts); run them as root, as CI does");
        }
    }

    private async Task StartProcessAsync()
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            "exec", Path.Combine(AppContext.BaseDirectory, "csicache.dll"), "all",
            "--endpoint", "unix://" + SocketPath, "--node-id", NodeId,
            "--state-dir", StateDir, "--local-dir", LocalDir, "--cache-dir", CacheDir,
            "--log-level", "Debug",
        }.Concat(_extraArgs.Contains("--cache-size") ? [] : ["--cache-size", "4Gi"]).Concat(_extraArgs))
        {
            start.ArgumentList.Add(arg);
        }

        var logStart = Log.Length;
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!Log[logStart..].Contains("serving unix://", StringComparison.Ordinal))
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"plugin did not start (exited={_process.HasExited}):\n{Log}");
            }

            await Task.Delay(50);
        }

        _channel = CsiChannel.Create(SocketPath);
        Identity = new global::Csi.V1.Identity.IdentityClient(_channel);
        Controller = new global::Csi.V1.Controller.ControllerClient(_channel);
        Node = new global::Csi.V1.Node.NodeClient(_channel);
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }

    /// <summary>SIGTERM, as kubelet's pod deletion sends it; returns the exit code.</summary>
    public async Task<int> StopAsync()
    {
        _channel?.Dispose();
        _channel = null;
        if (_process is null)
        {
            return 0;
        }

        if (!_process.HasExited)
        {
            _ = kill(_process.Id, 15);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(40));
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

        var code = _process.ExitCode;
        _process.Dispose();
        _process = null;
        return code;
    }

    /// <summary>SIGKILL: the plugin dies with its FUSE sessions, leaving their mounts behind.</summary>
    public async Task CrashAsync()
    {
        _channel?.Dispose();
        _channel = null;
        if (_process is { HasExited: false })
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
    }

    public Task RestartAsync() => StartProcessAsync();

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        finally
        {
            HostMounts.UnmountAllUnder(Root);
            HostMounts.DetachLoopsUnder(Root);
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
                // Still mounted despite the lazy unmounts; the failing assertion says why.
            }
        }
    }

    [DllImport("libc")]
    private static extern int kill(int pid, int signal);
}
