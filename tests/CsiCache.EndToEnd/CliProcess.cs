using System.Diagnostics;

namespace CsiCache.EndToEnd;

/// <summary>Runs the built <c>csicache</c> as a user would, and collects its exit code and output.</summary>
internal static class CliProcess
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "csicache.dll");

    /// <summary>Runs <paramref name="program"/> with <paramref name="arguments"/> to exit (bounded by <paramref name="timeout"/>).</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string program, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in arguments)
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(timeout);
        await process.WaitForExitAsync(deadline.Token);
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Runs <c>csicache ARGS</c>.</summary>
    public static Task<(int ExitCode, string Stdout, string Stderr)> RunCsiCacheAsync(TimeSpan timeout, params string[] arguments) =>
        RunAsync("dotnet", ["exec", Dll, .. arguments], timeout);
}
