namespace CsiCache.Fuse.Tests;

public sealed class MountInfoTests
{
    [Fact]
    public void TryParse_FuseLineWithOptionalFieldsAndEscapes()
    {
        const string line = @"612 27 0:73 / /tmp/with\040space rw,nosuid,nodev,relatime shared:300 master:1 - fuse.csicache csicache ro,user_id=0,group_id=0,allow_other";
        Assert.True(MountInfo.TryParse(line, out MountInfoEntry? entry));
        Assert.Equal("/tmp/with space", entry.MountPoint);
        Assert.Equal("fuse.csicache", entry.FileSystemType);
        Assert.Equal("csicache", entry.Source);
        Assert.Equal(0u, entry.DeviceMajor);
        Assert.Equal(73u, entry.DeviceMinor);
        Assert.True(entry.IsFuse);
    }

    [Fact]
    public void TryParse_Garbage_False()
    {
        Assert.False(MountInfo.TryParse("not a mountinfo line", out _));
    }

    [Fact]
    public void Read_ThisProcess_HasRoot()
    {
        Assert.Contains(MountInfo.Read(), e => e.MountPoint == "/");
    }
}
