using CsiCache.Cli.Commands;

return await CsiCacheCommand.Create().Parse(args).InvokeAsync();
