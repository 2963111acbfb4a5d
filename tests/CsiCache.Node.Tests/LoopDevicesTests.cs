using CsiCache.Node;

namespace CsiCache.Node.Tests;

public sealed class LoopDevicesTests
{
    [Fact]
    public void ReadBackingFile_ADeviceThatWentAway_IsNoMatchNotAnError()
    {
        string dir = Path.Combine(Path.GetTempPath(), "csicache-loop-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(dir, "loop"));
        try
        {
            string attribute = Path.Combine(dir, "loop", "backing_file");
            File.WriteAllText(attribute, "/var/lib/csicache/local/pvc-1.img\n");
            Assert.Equal("/var/lib/csicache/local/pvc-1.img", LoopDevices.ReadBackingFile(attribute));

            // Detached between the listing and the read: the attribute is gone (or reads ENODEV).
            File.Delete(attribute);
            Assert.Null(LoopDevices.ReadBackingFile(attribute));
            Directory.Delete(Path.Combine(dir, "loop"));
            Assert.Null(LoopDevices.ReadBackingFile(attribute));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void FindByBackingFile_AFileNoLoopDeviceHolds_IsNull() =>
        Assert.Null(LoopDevices.FindByBackingFile(Path.Combine(Path.GetTempPath(), "csicache-no-such-" + Guid.NewGuid().ToString("N"))));
}
