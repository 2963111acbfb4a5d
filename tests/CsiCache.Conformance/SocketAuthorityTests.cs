using System.Net.Sockets;
using System.Text;

namespace CsiCache.Conformance;

/// <summary>
/// Clients that dial a bare socket path (older kubelets, csi-sanity with
/// <c>--csi.endpoint=/path</c>) send the path as HTTP/2 <c>:authority</c>. Driven here with
/// hand-made HTTP/2 frames: two calls on one connection, the second naming the authority by
/// its HPACK dynamic-table index, so the plugin's and the client's tables must still agree.
/// </summary>
public sealed class SocketAuthorityTests(DriverFixture fixture) : IClassFixture<DriverFixture>
{
    [Theory]
    [InlineData("/var/lib/kubelet/plugins/csicache.dev/csi.sock")]
    [InlineData("%2Fvar%2Flib%2Fkubelet%2Fplugins%2Fcsicache.dev%2Fcsi.sock")]
    [InlineData("localhost")]
    public async Task PathAsAuthority_TwoCallsOnOneConnection_BothAnswered(string authority)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(fixture.Driver.SocketPath));
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());
        await stream.WriteAsync(Frame(0x4, 0, 0, [])); // empty SETTINGS

        // Call 1: :authority as a literal with incremental indexing (it becomes dynamic entry 62).
        var authorityBytes = Encoding.ASCII.GetBytes(authority);
        await stream.WriteAsync(Frame(0x1, 0x4, 1, Request("/csi.v1.Identity/GetPluginInfo", [0x41, .. Str(authorityBytes)])));
        await stream.WriteAsync(Frame(0x0, 0x1, 1, [0, 0, 0, 0, 0]));
        Assert.Contains("csicache.dev", await ReadResponseAsync(stream, 1), StringComparison.Ordinal);

        // Call 2: the same authority by index (0x80 | 62).
        await stream.WriteAsync(Frame(0x1, 0x4, 3, Request("/csi.v1.Identity/GetPluginInfo", [0x80 | 62])));
        await stream.WriteAsync(Frame(0x0, 0x1, 3, [0, 0, 0, 0, 0]));
        Assert.Contains("csicache.dev", await ReadResponseAsync(stream, 3), StringComparison.Ordinal);
    }

    /// <summary>:method POST, :scheme http, :path, the given :authority, content-type and te; only :authority may touch the dynamic table.</summary>
    private static byte[] Request(string path, byte[] authority) =>
    [
        0x83, // :method POST (static 3)
        0x86, // :scheme http (static 6)
        0x04, .. Str(Encoding.ASCII.GetBytes(path)), // :path, literal without indexing, name static 4
        .. authority, // pseudo-headers come before the others
        0x0F, 0x10, .. Str("application/grpc"u8.ToArray()), // content-type (static 31), without indexing
        0x00, .. Str("te"u8.ToArray()), .. Str("trailers"u8.ToArray()),
    ];

    private static byte[] Str(byte[] value) => value.Length < 127 ? [(byte)value.Length, .. value] : throw new ArgumentException("test strings are short");

    private static byte[] Frame(byte type, byte flags, int streamId, byte[] payload) =>
    [
        (byte)(payload.Length >> 16), (byte)(payload.Length >> 8), (byte)payload.Length, type, flags,
        (byte)(streamId >> 24), (byte)(streamId >> 16), (byte)(streamId >> 8), (byte)streamId, .. payload,
    ];

    /// <summary>Reads frames until the stream ends; returns its DATA as text, fails on RST_STREAM or GOAWAY.</summary>
    private static async Task<string> ReadResponseAsync(NetworkStream stream, int streamId)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var data = new StringBuilder();
        var header = new byte[9];
        while (true)
        {
            await stream.ReadExactlyAsync(header, timeout.Token);
            var length = (header[0] << 16) | (header[1] << 8) | header[2];
            var payload = new byte[length];
            await stream.ReadExactlyAsync(payload, timeout.Token);
            var id = ((header[5] & 0x7F) << 24) | (header[6] << 16) | (header[7] << 8) | header[8];
            switch (header[3])
            {
                case 0x3 when id == streamId:
                    throw new Xunit.Sdk.XunitException($"stream {streamId} was reset (error {payload[3]})");
                case 0x7:
                    throw new Xunit.Sdk.XunitException($"the plugin sent GOAWAY: {Encoding.ASCII.GetString(payload.AsSpan(8))}");
                case 0x4 when (header[4] & 0x1) == 0:
                    await stream.WriteAsync(Frame(0x4, 0x1, 0, [])); // SETTINGS ack
                    break;
                case 0x0 when id == streamId:
                    data.Append(Encoding.Latin1.GetString(payload));
                    break;
            }

            if (id == streamId && header[3] is 0x0 or 0x1 && (header[4] & 0x1) != 0)
            {
                return data.ToString();
            }
        }
    }
}
