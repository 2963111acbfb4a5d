using System.Diagnostics.CodeAnalysis;
using Grpc.Core;

namespace CsiCache.Csi;

/// <summary>
/// The spec's error codes as throw helpers. Messages are for a person reading
/// <c>kubectl describe pvc</c>: they say what was wrong and what to do, and never carry a secret.
/// </summary>
public static class CsiErrors
{
    public static RpcException InvalidArgument(string message) => new(new Status(StatusCode.InvalidArgument, message));
    public static RpcException NotFound(string message) => new(new Status(StatusCode.NotFound, message));
    public static RpcException AlreadyExists(string message) => new(new Status(StatusCode.AlreadyExists, message));
    public static RpcException FailedPrecondition(string message) => new(new Status(StatusCode.FailedPrecondition, message));
    public static RpcException ResourceExhausted(string message) => new(new Status(StatusCode.ResourceExhausted, message));
    public static RpcException OutOfRange(string message) => new(new Status(StatusCode.OutOfRange, message));
    public static RpcException Aborted(string message) => new(new Status(StatusCode.Aborted, message));
    public static RpcException Unavailable(string message) => new(new Status(StatusCode.Unavailable, message));
    public static RpcException Internal(string message) => new(new Status(StatusCode.Internal, message));
    public static RpcException Unimplemented(string message) => new(new Status(StatusCode.Unimplemented, message));
}

/// <summary>Validation of required request fields; every failure names the field as the spec spells it.</summary>
public static class Require
{
    /// <summary>Returns <paramref name="value"/> or throws INVALID_ARGUMENT naming <paramref name="field"/>.</summary>
    public static string NonEmpty(string? value, string field)
    {
        if (string.IsNullOrEmpty(value))
        {
            ThrowMissing(field);
        }

        return value;
    }

    /// <summary>Returns <paramref name="value"/> or throws INVALID_ARGUMENT naming <paramref name="field"/>.</summary>
    public static T Present<T>(T? value, string field)
        where T : class
    {
        if (value is null)
        {
            ThrowMissing(field);
        }

        return value;
    }

    [DoesNotReturn]
    private static void ThrowMissing(string field) => throw CsiErrors.InvalidArgument($"{field} is required");
}
