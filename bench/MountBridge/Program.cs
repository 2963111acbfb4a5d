using System.CommandLine;
using CsiCache.Cli.Commands;

// `csicache-mount-bridge mount SOURCE MOUNTPOINT ...`: the same arguments as `csicache mount`.
var root = new RootCommand("csicache mount, bridged for the benchmark until the CLI exposes it");
root.Subcommands.Add(MountCommand.Create());
return await root.Parse(args).InvokeAsync();
