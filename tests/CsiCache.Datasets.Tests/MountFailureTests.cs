using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CsiCache.Fuse;

namespace CsiCache.Datasets.Tests;

/// <summary>MountAsync's failures: the right kind, an actionable message without secrets, and nothing left mounted.</summary>
[Collection(MountCollection.Name)]
public sealed class MountFailureTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string, string, string> InvalidSources => new()
    {
        { "ftp://host/data/", "", "scheme" },
        { "", "", "source" },
        { "file:///data", "cacheMedium=tape", "cacheMedium" },
        { "file:///data", "refresh=soon", "refresh" },
        { "file:///data", "prefetch=/abs/*", "prefetch" },
        { "file:///data", "subPath=../etc", "subPath" },
        { "https://user:pw@host/dir/", "", "credentials" },
        { "file:///data", "endpoint=http://x", "endpoint" },
    };

    [Theory]
    [MemberData(nameof(InvalidSources))]
    public async Task MountAsync_InvalidSourceOrParameter_ThrowsInvalidSourceNamingIt(string source, string parameter, string named)
    {
        using var temp = new TempDirectory("inv");
        await using var host = new DatasetHost(TestMount.HostOptions(temp));
        var parameters = new Dictionary<string, string>();
        if (parameter.Length > 0)
        {
            string[] kv = parameter.Split('=', 2);
            parameters[kv[0]] = kv[1];
        }
        string mountPoint = Path.Combine(temp.Path, "mnt");

        DatasetException e = await Assert.ThrowsAsync<DatasetException>(() => host.MountAsync(new(source, parameters, new Dictionary<string, string>(), mountPoint), Ct));
        Assert.Equal(DatasetErrorKind.InvalidSource, e.Kind);
        Assert.Contains(named, e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("pw@", e.Message, StringComparison.Ordinal);
        Assert.Null(MountInfo.Find(mountPoint));
    }

    [Fact(Timeout = 90_000)]
    public async Task MountAsync_MissingDirectory_ThrowsNotFoundAndMountsNothing()
    {
        Privileges.RequireRootAndFuse();
        using var temp = new TempDirectory("nf");
        await using var host = new DatasetHost(TestMount.HostOptions(temp));
        string mountPoint = Path.Combine(temp.Path, "mnt");

        DatasetException e = await Assert.ThrowsAsync<DatasetException>(() =>
            host.MountAsync(new("file://" + temp.Path + "/does-not-exist", new Dictionary<string, string>(), new Dictionary<string, string>(), mountPoint), Ct));
        Assert.Equal(DatasetErrorKind.NotFound, e.Kind);
        Assert.Contains("does-not-exist", e.Message, StringComparison.Ordinal);
        Assert.Null(MountInfo.Find(mountPoint));
        Assert.Equal(0, host.GetStats().ActiveMounts);
    }

    [Fact(Timeout = 90_000)]
    public async Task MountAsync_MissingSubPath_ThrowsNotFound()
    {
        Privileges.RequireRootAndFuse();
        using var temp = new TempDirectory("sp");
        string data = temp.Sub("data");
        await using var host = new DatasetHost(TestMount.HostOptions(temp));
        DatasetException e = await Assert.ThrowsAsync<DatasetException>(() =>
            host.MountAsync(new("file://" + data, new Dictionary<string, string> { ["subPath"] = "train" }, new Dictionary<string, string>(), Path.Combine(temp.Path, "mnt")), Ct));
        Assert.Equal(DatasetErrorKind.NotFound, e.Kind);
    }

    [Fact(Timeout = 90_000)]
    public async Task MountAsync_OriginDown_ThrowsOriginUnavailableWithinDeadline()
    {
        Privileges.RequireRootAndFuse();
        using var temp = new TempDirectory("down");
        await using var host = new DatasetHost(TestMount.HostOptions(temp));
        int port = FreePort();
        string mountPoint = Path.Combine(temp.Path, "mnt");

        var clock = Stopwatch.StartNew();
        DatasetException e = await Assert.ThrowsAsync<DatasetException>(() =>
            host.MountAsync(new($"http://127.0.0.1:{port}/data/", new Dictionary<string, string>(), new Dictionary<string, string>(), mountPoint), Ct));
        Assert.Equal(DatasetErrorKind.OriginUnavailable, e.Kind);
        Assert.True(clock.Elapsed <= host.OriginDeadline, $"took {clock.Elapsed}, deadline {host.OriginDeadline}");
        Assert.Contains("127.0.0.1", e.Message, StringComparison.Ordinal);
        Assert.Null(MountInfo.Find(mountPoint));
    }

    [Fact(Timeout = 90_000)]
    public async Task MountAsync_CredentialsRefused_ThrowsAccessDeniedWithoutTheSecret()
    {
        Privileges.RequireRootAndFuse();
        using var temp = new TempDirectory("auth");
        string data = temp.Sub("data");
        File.WriteAllText(Path.Combine(data, "x"), "x");
        await using HttpTestOrigin server = await HttpTestOrigin.StartAsync(data);
        server.RequiredAuthorization = "Basic " + Convert.ToBase64String("reader:right-password"u8);
        await using var host = new DatasetHost(TestMount.HostOptions(temp));
        var secrets = new Dictionary<string, string> { ["username"] = "reader", ["password"] = "hunter2-wrong" };
        string mountPoint = Path.Combine(temp.Path, "mnt");

        DatasetException e = await Assert.ThrowsAsync<DatasetException>(() =>
            host.MountAsync(new(server.BaseUri.AbsoluteUri, new Dictionary<string, string>(), secrets, mountPoint), Ct));
        Assert.Equal(DatasetErrorKind.AccessDenied, e.Kind);
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            Assert.DoesNotContain("hunter2", x.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("right-password", x.Message, StringComparison.Ordinal);
        }
        Assert.DoesNotContain("hunter2", new DatasetMountOptions(server.BaseUri.AbsoluteUri, new Dictionary<string, string>(), secrets, mountPoint).ToString(), StringComparison.Ordinal);
        Assert.Null(MountInfo.Find(mountPoint));

        // The right secret mounts.
        secrets["password"] = "right-password";
        await using DatasetMount mount = await host.MountAsync(new(server.BaseUri.AbsoluteUri, new Dictionary<string, string>(), secrets, mountPoint), Ct);
        Assert.Equal("x", File.ReadAllText(Path.Combine(mountPoint, "x")));
    }

    [Fact(Timeout = 90_000)]
    public async Task MountAsync_MemoryMediumWithoutMemoryCache_ThrowsInvalidSource()
    {
        using var temp = new TempDirectory("mem");
        await using var host = new DatasetHost(TestMount.HostOptions(temp));
        DatasetException e = await Assert.ThrowsAsync<DatasetException>(() =>
            host.MountAsync(new("file://" + temp.Path, new Dictionary<string, string> { ["cacheMedium"] = "memory" }, new Dictionary<string, string>(), Path.Combine(temp.Path, "mnt")), Ct));
        Assert.Equal(DatasetErrorKind.InvalidSource, e.Kind);
        Assert.Contains("memory", e.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task MountAsync_MountPointAlreadyMounted_ThrowsMountFailedAndKeepsTheFirst()
    {
        Privileges.RequireRootAndFuse();
        using var source = new TempDirectory("src");
        File.WriteAllText(Path.Combine(source.Path, "a"), "a");
        await using TestMount test = await TestMount.StartAsync("file://" + source.Path);

        DatasetException e = await Assert.ThrowsAsync<DatasetException>(() =>
            test.Host.MountAsync(new("file://" + source.Path, new Dictionary<string, string>(), new Dictionary<string, string>(), test.MountPoint), Ct));
        Assert.Equal(DatasetErrorKind.MountFailed, e.Kind);
        Assert.Contains("already", e.Message, StringComparison.Ordinal);
        Assert.True(test.Mount.IsAlive);
        Assert.Equal("a", File.ReadAllText(test.PathOf("a")));
    }

    [Fact(Timeout = 90_000)]
    public async Task MountAsync_RelativeMountPoint_ThrowsMountFailed()
    {
        using var temp = new TempDirectory("rel");
        await using var host = new DatasetHost(TestMount.HostOptions(temp));
        DatasetException e = await Assert.ThrowsAsync<DatasetException>(() =>
            host.MountAsync(new("file://" + temp.Path, new Dictionary<string, string>(), new Dictionary<string, string>(), "relative/mnt"), Ct));
        Assert.Equal(DatasetErrorKind.MountFailed, e.Kind);
    }

    [Fact(Timeout = 90_000)]
    public async Task HostDispose_StopsEveryMount()
    {
        Privileges.RequireRootAndFuse();
        using var temp = new TempDirectory("hd");
        string data = temp.Sub("data");
        File.WriteAllText(Path.Combine(data, "f"), "f");
        var host = new DatasetHost(TestMount.HostOptions(temp));
        DatasetMount a, b;
        try
        {
            a = await host.MountAsync(new("file://" + data, new Dictionary<string, string>(), new Dictionary<string, string>(), Path.Combine(temp.Path, "a")), Ct);
            b = await host.MountAsync(new("file://" + data, new Dictionary<string, string>(), new Dictionary<string, string>(), Path.Combine(temp.Path, "b")), Ct);
            Assert.Equal(2, host.GetStats().ActiveMounts);
            Assert.True(a.IsAlive && b.IsAlive);
        }
        finally
        {
            await host.DisposeAsync();
        }
        Assert.False(a.IsAlive);
        Assert.False(b.IsAlive);
        Assert.Null(MountInfo.Find(a.MountPoint));
        Assert.Null(MountInfo.Find(b.MountPoint));
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
