using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;

namespace CsiCache.Csi;

/// <summary>
/// Every CSI call passes through here once: it gets a request id, one structured log line
/// (method, volume id, result code, duration; the request itself only at Debug and only after
/// <see cref="SecretRedactor"/>), and its exception mapped to a status code. grpc-dotnet would
/// answer an unexpected exception with UNKNOWN; the sidecars treat UNKNOWN as "maybe done" and
/// keep retrying, so we answer INTERNAL (or the code a domain exception carries) instead.
/// </summary>
public sealed class CsiCallInterceptor(ILogger<CsiCallInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var method = MethodName(context.Method);
        var volumeId = VolumeIdOf(request as IMessage);
        var requestId = Guid.NewGuid().ToString("N")[..12];
        var quiet = method is "Probe" or "NodeGetCapabilities" or "ControllerGetCapabilities"
            or "GetPluginInfo" or "GetPluginCapabilities" or "NodeGetVolumeStats" or "GetCapacity";
        if (logger.IsEnabled(LogLevel.Debug) && request is IMessage message)
        {
            CsiLog.Request(logger, method, requestId, SecretRedactor.ToLogString(message));
        }

        var started = Stopwatch.GetTimestamp();
        var code = StatusCode.OK;
        try
        {
            return await continuation(request, context);
        }
        catch (RpcException e)
        {
            code = e.StatusCode;
            CsiLog.Failed(logger, method, volumeId, e.Status.Detail);
            throw;
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            code = StatusCode.Cancelled;
            throw new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled by the caller"));
        }
        catch (Exception e) when (DomainStatus.TryMap(e, out var status))
        {
            code = status.StatusCode;
            CsiLog.Failed(logger, method, volumeId, status.Detail);
            throw new RpcException(status);
        }
        catch (Exception e)
        {
            code = StatusCode.Internal;
            CsiLog.Unexpected(logger, method, volumeId, e);
            throw new RpcException(new Status(StatusCode.Internal, $"{method} failed: {e.Message}"));
        }
        finally
        {
            var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            if (quiet && code == StatusCode.OK)
            {
                CsiLog.QuietCall(logger, method, volumeId, code.ToString(), ms, requestId);
            }
            else
            {
                CsiLog.Call(logger, method, volumeId, code.ToString(), ms, requestId);
            }
        }
    }

    private static string MethodName(string fullMethod)
    {
        var slash = fullMethod.LastIndexOf('/');
        return slash >= 0 ? fullMethod[(slash + 1)..] : fullMethod;
    }

    private static string VolumeIdOf(IMessage? message)
    {
        var field = message?.Descriptor.FindFieldByName("volume_id");
        return field is null ? "-" : field.Accessor.GetValue(message) as string is { Length: > 0 } id ? id : "-";
    }
}

/// <summary>
/// A failure that deeper layers (mounts, images, origins) raise with the CSI code that fits
/// it, so those layers need not know gRPC.
/// </summary>
public class CsiFaultException(StatusCode code, string message, Exception? inner = null) : Exception(message, inner)
{
    public StatusCode Code { get; } = code;
}

internal static class DomainStatus
{
    public static bool TryMap(Exception e, out Status status)
    {
        switch (e)
        {
            case CsiFaultException fault:
                status = new Status(fault.Code, fault.Message);
                return true;
            case TimeoutException:
                status = new Status(StatusCode.DeadlineExceeded, e.Message);
                return true;
            default:
                status = default;
                return false;
        }
    }
}
