using System.Diagnostics;
using System.Text;
using Csi.V1;
using CsiCache.Csi;
using Grpc.Net.Client;

namespace CsiCache.Conformance;

/// <summary>
/// A real <c>csicache all</c> process on a real unix socket, under a temporary root that
/// also holds its state and local directories and the kubelet-shaped paths tests use.
/// Disposing stops the process and then undoes every mount and loop device under the root,
/// so a failed test leaves nothing behind on the machine.
/// Needs root (mount(2), loop devices): CI runs as root.
/// </summary>
public sealed class DriverProcess : IAsyncDisposable
{
    private readonly StringBuilder _log = new();
    private Process? _process;
    private GrpcChannel? _channel;

    private DriverProcess(string root)
    {
        Root = root;
        StateDir = Path.Combine(root, "state");
        LocalDir = Path.Combine(root, "local");
        SocketPath = Path.Combine(root, "plugin", "csi.sock");
        Directory.CreateDirectory(Path.GetDirectoryName(SocketPath)!);
    }

    public string Root { get; }
    public string StateDir { get; }
    public string LocalDir { get; }
    public string SocketPath { get; }
    public string NodeId { get; } = "conformance-node";

    public global::Csi.V1.Identity.IdentityClient Identity { get; private set; } = null!;
    public global::Csi.V1.Controller.ControllerClient Controller { get; private set; } = null!;
    public global::Csi.V1.Node.NodeClient Node { get; private set; } = null!;

    /// <summary>Everything the driver wrote to stdout and stderr so far.</summary>
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

    public static async Task<DriverProcess> StartAsync(string? root = null, params string[] extraArgs)
    {
        RequireRoot();
        root ??= Directory.CreateTempSubdirectory("csicache-conf-").FullName;
        var driver = new DriverProcess(root);
        await driver.StartProcessAsync(extraArgs);
        return driver;
    }

    /// <summary>Fails the test loudly when not root: these tests mount, and must not pass by doing nothing.</summary>
    public static void RequireRoot()
    {
        if (Environment.UserName != "root" && !string.Equals(Environment.GetEnvironmentVariable("USER"), "root", StringComparison.Ordinal)
            && geteuid() != 0)
        {
            throw new InvalidOperationException("conformance tests need root (mount, loop devices); run them as root, as CI does");
        }
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern uint geteuid();

    private async Task StartProcessAsync(string[] extraArgs)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "csicache.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            "exec", dll, "all", "--endpoint", "unix://" + SocketPath, "--node-id", NodeId,
            "--state-dir", StateDir, "--local-dir", LocalDir,
        }.Concat(extraArgs))
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
                throw new InvalidOperationException($"driver did not start (exited={_process.HasExited}):\n{Log}");
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
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }

    /// <summary>SIGTERM, as kubelet sends it; returns the exit code.</summary>
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
            _ = Mono.Kill(_process.Id, 15);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(timeout.Token);
        }

        var code = _process.ExitCode;
        _process.Dispose();
        _process = null;
        return code;
    }

    /// <summary>SIGKILL: a crash, leaving mounts and state behind for the next process to find.</summary>
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

    /// <summary>Starts a new driver process on the same root (state dir, local dir, socket).</summary>
    public async Task RestartAsync() => await StartProcessAsync([]);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        finally
        {
            HostCleanup.UnmountAllUnder(Root);
            HostCleanup.DetachLoopsUnder(Root);
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
                // Something is still mounted; UnmountAllUnder has already tried its best and the
                // failing assertion elsewhere says why.
            }
        }
    }

    private static class Mono
    {
        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
        public static extern int Kill(int pid, int signal);
    }
}
