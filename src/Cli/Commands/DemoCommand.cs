using System.CommandLine;
using CsiCache.Cli.Demo;
using CsiCache.Cli.Hosting;
using Serilog.Events;

namespace CsiCache.Cli.Commands;

/// <summary><c>csicache demo</c>: the main job in one command, on an embedded dataset and origin.</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var command = new Command("demo",
            "Serve a generated ImageNet-like dataset from a local HTTP origin through a real CSI dataset volume "
            + "(CreateVolume, NodeStageVolume, NodePublishVolume over the plugin's unix socket), read every file cold "
            + "and warm, check every byte, and clean up. Needs root: it mounts a FUSE filesystem.");
        var readers = new Option<int>("--readers")
        {
            Description = "parallel file readers, as a data loader's workers",
            DefaultValueFactory = _ => 8,
        };
        var verbose = new Option<bool>("--verbose") { Description = "show the plugin's log (Information and above) on stderr" };
        command.Options.Add(readers);
        command.Options.Add(verbose);
        command.SetAction(async (parse, ct) =>
        {
            if (!Environment.IsPrivilegedProcess)
            {
                await Console.Error.WriteLineAsync("csicache demo needs root: it mounts a FUSE filesystem");
                return 1;
            }

            var logger = Logging.Create("text", parse.GetValue(verbose) ? LogEventLevel.Information : LogEventLevel.Warning);
            try
            {
                return await new DemoRun(Console.Out, logger, Math.Clamp(parse.GetValue(readers), 1, 64)).RunAsync(ct);
            }
            finally
            {
                (logger as IDisposable)?.Dispose();
            }
        });
        return command;
    }
}
