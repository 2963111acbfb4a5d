using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace CsiCache.Cli.Hosting;

/// <summary>Serilog, set up once: text for people, compact JSON (one object per line) for log pipelines.</summary>
internal static class Logging
{
    public static Serilog.ILogger Create(string format, LogEventLevel level)
    {
        var config = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            // ASP.NET's own request logging would double every CSI call line; ours is the one that counts.
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            .MinimumLevel.Override("Grpc", LogEventLevel.Warning)
            .Enrich.FromLogContext();
        config = format == "json"
            ? config.WriteTo.Console(new CompactJsonFormatter(), standardErrorFromLevel: LogEventLevel.Verbose)
            : config.WriteTo.Console(
                outputTemplate: "{Timestamp:yyyy-MM-ddTHH:mm:ss.fffZ} {Level:u3} {SourceContext}: {Message:lj}{NewLine}{Exception}",
                standardErrorFromLevel: LogEventLevel.Verbose,
                formatProvider: System.Globalization.CultureInfo.InvariantCulture);
        return config.CreateLogger();
    }
}
