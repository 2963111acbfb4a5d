using System.CommandLine;
using CsiCache.Cli.Commands;

// On SIGTERM/SIGINT System.CommandLine cancels the action's token and, by default, gives it
// only 2 s to return. The plugin needs longer: in-flight CSI calls drain (up to 25 s) and every
// FUSE session is unmounted. Kubelet's default grace period is 30 s.
// Before any file is opened: the chunk cache sizes its pool of idle fds from this limit.
CsiCache.Cli.Hosting.OpenFileLimit.Raise();

var invocation = new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(28) };
return await CsiCacheCommand.Create().Parse(args).InvokeAsync(invocation);
