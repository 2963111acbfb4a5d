using System.Net.Sockets;
using Csi.V1;
using static CsiCache.Conformance.Requests;

namespace CsiCache.Conformance;

/// <summary>The plugin process itself: socket handling, SIGTERM, crash and restart. Needs root.</summary>
public sealed class LifecycleTests
{
    [Fact]
    public async Task Start_StaleSocketFile_IsReplaced_AndSocketIsOwnerOnly()
    {
        var root = Directory.CreateTempSubdirectory("csicache-conf-").FullName;
        var socket = Path.Combine(root, "plugin", "csi.sock");
        Directory.CreateDirectory(Path.GetDirectoryName(socket)!);
        // A socket left by a killed process: bound, never unlinked.
        using (var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            stale.Bind(new UnixDomainSocketEndPoint(socket));
        }

        await using var driver = await PluginProcess.StartInAsync(root);
        Assert.True((await driver.Identity.ProbeAsync(new ProbeRequest())).Ready);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
    }

    [Fact]
    public async Task Sigterm_ExitsCleanly_AndRemovesSocket()
    {
        await using var driver = await PluginProcess.StartAsync();
        await driver.Identity.GetPluginInfoAsync(new GetPluginInfoRequest());
        Assert.Equal(0, await driver.StopAsync());
        Assert.False(File.Exists(driver.SocketPath));
        Assert.Contains("csicache stopped", driver.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_StateDirReadOnly_NotReady()
    {
        await using var driver = await PluginProcess.StartAsync();
        // Root ignores permission bits, so make the state dir a read-only mount instead.
        Assert.Equal(0, mount(driver.StateDir, driver.StateDir, null, 0x1000 /* MS_BIND */, null));
        try
        {
            Assert.Equal(0, mount("none", driver.StateDir, null, 0x1000 | 0x20 | 0x1 /* BIND|REMOUNT|RDONLY */, null));
            Assert.False((await driver.Identity.ProbeAsync(new ProbeRequest())).Ready);
        }
        finally
        {
            _ = umount2(driver.StateDir, 2);
        }

        Assert.True((await driver.Identity.ProbeAsync(new ProbeRequest())).Ready);
    }

    [Fact]
    public async Task Crash_RestartedPluginKnowsWhatIsStagedAndCleansUp()
    {
        await using var driver = await PluginProcess.StartAsync();
        var id = (await driver.Controller.CreateVolumeAsync(CreateLocal(UniqueName("restart")))).Volume.VolumeId;
        var staging = StagingPath(driver, id);
        var target = TargetPath(driver, "pv-restart");
        await driver.Node.NodeStageVolumeAsync(new NodeStageVolumeRequest { VolumeId = id, StagingTargetPath = staging, VolumeCapability = Mount() });
        await driver.Node.NodePublishVolumeAsync(new NodePublishVolumeRequest
        {
            VolumeId = id, StagingTargetPath = staging, TargetPath = target, VolumeCapability = Mount(),
        });
        await File.WriteAllTextAsync(Path.Combine(target, "before-crash"), "still here");

        await driver.CrashAsync();
        Assert.Contains(target, HostMounts.MountPointsUnder(driver.Root));
        await driver.RestartAsync();

        // The new process answers kubelet's retries from what the old one recorded.
        await driver.Node.NodeStageVolumeAsync(new NodeStageVolumeRequest { VolumeId = id, StagingTargetPath = staging, VolumeCapability = Mount() });
        await driver.Node.NodePublishVolumeAsync(new NodePublishVolumeRequest
        {
            VolumeId = id, StagingTargetPath = staging, TargetPath = target, VolumeCapability = Mount(),
        });
        Assert.Equal("still here", await File.ReadAllTextAsync(Path.Combine(target, "before-crash")));
        var listed = await driver.Controller.ListVolumesAsync(new ListVolumesRequest());
        Assert.Contains(listed.Entries, e => e.Volume.VolumeId == id);

        await driver.Node.NodeUnpublishVolumeAsync(new NodeUnpublishVolumeRequest { VolumeId = id, TargetPath = target });
        await driver.Node.NodeUnstageVolumeAsync(new NodeUnstageVolumeRequest { VolumeId = id, StagingTargetPath = staging });
        await driver.Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = id });
        Assert.Empty(HostMounts.MountPointsUnder(driver.Root));
        Assert.Empty(HostMounts.LoopsBackedUnder(driver.Root));
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int mount(string source, string target, string? type, ulong flags, string? data);

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int umount2(string target, int flags);
}
