using CsiCache.Node;
using Grpc.Core;

namespace CsiCache.Node.Tests;

public sealed class MountTableTests
{
    [Fact]
    public void Read_ParsesMountinfo_WithEscapesAndOptionalFields()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(file,
            [
                "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
                "40 35 0:50 / /var/lib/kubelet/pods/x/mount ro,nosuid shared:5 master:2 - fuse.csicache csicache rw,user_id=0",
                "garbage line",
            ]);
            var entries = MountTable.Read(file);
            Assert.Equal(2, entries.Count);
            Assert.Equal("/mnt/with space", entries[0].MountPoint);
            Assert.Equal("ext3", entries[0].FileSystemType);
            Assert.Equal("/dev/root", entries[0].Source);
            Assert.Equal("fuse.csicache", entries[1].FileSystemType);
            Assert.Equal("ro,nosuid", entries[1].Options);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void IsMountPoint_RootIsMounted_TempDirIsNot()
    {
        Assert.True(MountTable.IsMountPoint("/"));
        var dir = Directory.CreateTempSubdirectory("csicache-mt-");
        try
        {
            Assert.False(MountTable.IsMountPoint(dir.FullName));
        }
        finally
        {
            dir.Delete();
        }
    }

    [Theory]
    [InlineData("noatime")]
    [InlineData("data=ordered")]
    [InlineData("commit=60")]
    public void ValidateMountFlags_PlainOptionsPass(string flag) => Assert.Equal([flag], Mounter.ValidateMountFlags([flag]));

    [Theory]
    [InlineData("noatime,loop")]
    [InlineData("loop")]
    [InlineData("offset=4096")]
    [InlineData("x-mount.mkdir")]
    [InlineData("$(reboot)")]
    [InlineData("a b")]
    public void ValidateMountFlags_AnythingElseRefused(string flag)
    {
        var error = Assert.Throws<RpcException>(() => Mounter.ValidateMountFlags([flag]));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }
}
