using System.Net.Sockets;
using Grpc.Net.Client;

namespace CsiCache.Csi;

/// <summary>
/// A gRPC channel to a CSI plugin over its unix socket, the way kubelet and the sidecars
/// reach it. Used by <c>csicache demo</c> and the conformance tests.
/// </summary>
public static class CsiChannel
{
    public static GrpcChannel Create(string socketPath)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        // The authority is ignored on a unix socket; gRPC only needs a well-formed http URI.
        return GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
    }
}
