using CsiCache.Csi;

namespace CsiCache.Csi.Tests;

public sealed class CsiEndpointTests
{
    [Theory]
    [InlineData("unix:///csi/csi.sock", "/csi/csi.sock")]
    [InlineData("/var/lib/kubelet/plugins/csicache.dev/csi.sock", "/var/lib/kubelet/plugins/csicache.dev/csi.sock")]
    public void Parse_UnixSocket(string endpoint, string path) => Assert.Equal(path, CsiEndpoint.Parse(endpoint).SocketPath);

    [Theory]
    [InlineData("tcp://0.0.0.0:10000")]
    [InlineData("unix://relative.sock")]
    [InlineData("csi.sock")]
    public void Parse_NotAUnixSocket_SaysHow(string endpoint)
    {
        var error = Assert.Throws<ArgumentException>(() => CsiEndpoint.Parse(endpoint));
        Assert.Contains("unix:///", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PrepareForListen_RefusesToDeleteAFileWithContent()
    {
        var dir = Directory.CreateTempSubdirectory("csicache-endpoint-");
        try
        {
            var path = Path.Combine(dir.FullName, "csi.sock");
            File.WriteAllText(path, "somebody's data");
            Assert.Throws<IOException>(() => new CsiEndpoint(path).PrepareForListen());
            Assert.True(File.Exists(path));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
