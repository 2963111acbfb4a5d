using Microsoft.Extensions.Logging;

namespace CsiCache.Csi;

internal static partial class CsiLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information,
        Message = "CSI {Method} volume={VolumeId} code={Code} duration_ms={DurationMs:F1} request_id={RequestId}")]
    public static partial void Call(ILogger logger, string method, string volumeId, string code, double durationMs, string requestId);

    [LoggerMessage(EventId = 101, Level = LogLevel.Debug,
        Message = "CSI {Method} volume={VolumeId} code={Code} duration_ms={DurationMs:F1} request_id={RequestId}")]
    public static partial void QuietCall(ILogger logger, string method, string volumeId, string code, double durationMs, string requestId);

    [LoggerMessage(EventId = 102, Level = LogLevel.Debug, Message = "CSI {Method} request_id={RequestId} request={Request}")]
    public static partial void Request(ILogger logger, string method, string requestId, string request);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "CSI {Method} volume={VolumeId} failed: {Message}")]
    public static partial void Failed(ILogger logger, string method, string volumeId, string message);

    [LoggerMessage(EventId = 104, Level = LogLevel.Error, Message = "CSI {Method} volume={VolumeId} internal error")]
    public static partial void Unexpected(ILogger logger, string method, string volumeId, Exception exception);
}
