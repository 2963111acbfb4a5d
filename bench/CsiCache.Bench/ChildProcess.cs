using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace CsiCache.Bench;

/// <summary>
/// A server or mount daemon the benchmark started: output goes to a log file, and disposal stops
/// it (a signal, then SIGKILL after a grace period). Registered with <see cref="Cleanup"/> so
/// Ctrl-C, SIGTERM or a crash of the benchmark's own code still stops it.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly string _stopSignal;
    private readonly Queue<string> _tail = new();
    private int _disposedFlag;

    private ChildProcess(Process process, StreamWriter log, string stopSignal, string logPath)
    {
        _process = process;
        Pid = process.Id;
        _log = log;
        _stopSignal = stopSignal;
        LogPath = logPath;
    }

    public int Pid { get; }

    public string LogPath { get; }

    /// <summary>True once the process has exited or was stopped (disposed), e.g. by the Ctrl-C cleanup on another thread.</summary>
    public bool HasExited
    {
        get
        {
            try
            {
                return Volatile.Read(ref _disposedFlag) != 0 || _process.HasExited;
            }
            catch (InvalidOperationException)
            {
                return true;
            }
        }
    }

    /// <summary>Raised for each line of output (stdout and stderr).</summary>
    public event Action<string>? Line;

    /// <summary>The last lines of output, for error messages.</summary>
    public string Tail
    {
        get
        {
            lock (_tail)
            {
                return string.Join('\n', _tail);
            }
        }
    }

    public static ChildProcess Start(string file, IEnumerable<string> arguments, string logPath, string stopSignal = "TERM", IDictionary<string, string>? environment = null, bool keepStdinOpen = false)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = keepStdinOpen,
            UseShellExecute = false,
        };
        foreach (string a in arguments)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (KeyValuePair<string, string> kv in environment ?? new Dictionary<string, string>())
        {
            if (kv.Value.Length == 0)
            {
                psi.Environment.Remove(kv.Key); // "" removes an inherited variable
            }
            else
            {
                psi.Environment[kv.Key] = kv.Value;
            }
        }
        var log = new StreamWriter(logPath, append: true) { AutoFlush = true };
        log.WriteLine($"# {DateTime.UtcNow:O} {file} {string.Join(' ', psi.ArgumentList)}");
        Process process = Process.Start(psi) ?? throw new InvalidOperationException($"{file} did not start");
        var child = new ChildProcess(process, log, stopSignal, logPath);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Cleanup.Register(child);
        return child;
    }

    /// <summary>Peak resident set (VmHWM) of the process so far, in bytes; 0 if it is gone.</summary>
    public long PeakRssBytes()
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{Pid}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (IOException)
        {
        }
        return 0;
    }

    /// <summary>CPU time (user + system) the process has used so far, in seconds.</summary>
    public double CpuSeconds()
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{Pid}/stat");
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // utime and stime are fields 14 and 15 of stat; index 11 and 12 after the command name.
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private bool ProcessExited()
    {
        try
        {
            return _process.HasExited;
        }
        catch (InvalidOperationException)
        {
            return true;
        }
    }

    public bool WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    public void Signal(string signal)
    {
        if (!ProcessExited())
        {
            Run("kill", "-" + signal, Pid.ToString(CultureInfo.InvariantCulture));
        }
    }

    public void Dispose()
    {
        // Once, even when the Ctrl-C cleanup and the main thread race to it.
        if (Interlocked.Exchange(ref _disposedFlag, 1) != 0)
        {
            return;
        }
        try
        {
            if (!_process.HasExited)
            {
                Signal(_stopSignal);
                if (!_process.WaitForExit(TimeSpan.FromSeconds(20)))
                {
                    _process.Kill(entireProcessTree: true);
                    _process.WaitForExit(TimeSpan.FromSeconds(10));
                }
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        _process.Dispose();
        lock (_tail)
        {
            _log.Dispose();
        }
        Cleanup.Unregister(this);
    }

    /// <summary>Runs a short command to completion (bounded): exit code and output.</summary>
    public static (int Code, string Output) Run(string file, params string[] arguments)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in arguments)
        {
            psi.ArgumentList.Add(a);
        }
        using Process p = Process.Start(psi) ?? throw new InvalidOperationException($"{file} did not start");
        Task<string> output = p.StandardOutput.ReadToEndAsync();
        Task<string> error = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"{file} timed out");
        }
        return (p.ExitCode, output.GetAwaiter().GetResult() + error.GetAwaiter().GetResult());
    }

    /// <summary>A free TCP port on 127.0.0.1 (the OS picks it).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Waits until something accepts connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public static bool WaitForPort(int port, TimeSpan timeout, Func<bool> stillAlive)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout && stillAlive())
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException)
            {
                Thread.Sleep(50);
            }
        }
        return false;
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_tail)
        {
            if (Volatile.Read(ref _disposedFlag) == 0)
            {
                _log.WriteLine(line);
            }
            _tail.Enqueue(line);
            while (_tail.Count > 20)
            {
                _tail.Dequeue();
            }
        }
        Line?.Invoke(line);
    }
}

/// <summary>
/// Everything that must be undone however the benchmark ends (mounts, servers), undone in reverse
/// order by <see cref="RunAll"/>: called from finally, from SIGINT/SIGTERM, and at process exit.
/// </summary>
internal static class Cleanup
{
    private static readonly List<IDisposable> Items = [];

    public static void Register(IDisposable item)
    {
        lock (Items)
        {
            Items.Add(item);
        }
    }

    public static void Unregister(IDisposable item)
    {
        lock (Items)
        {
            Items.Remove(item);
        }
    }

    public static void RunAll()
    {
        while (true)
        {
            IDisposable item;
            lock (Items)
            {
                if (Items.Count == 0)
                {
                    return;
                }
                item = Items[^1];
                Items.RemoveAt(Items.Count - 1);
            }
            try
            {
                item.Dispose();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
            {
                Console.Error.WriteLine($"cleanup: {e.Message}");
            }
        }
    }
}
