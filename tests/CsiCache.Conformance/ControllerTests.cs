using Csi.V1;
using Grpc.Core;
using static CsiCache.Conformance.Requests;
using Mode = Csi.V1.VolumeCapability.Types.AccessMode.Types.Mode;
using RpcType = Csi.V1.ControllerServiceCapability.Types.RPC.Types.Type;

namespace CsiCache.Conformance;

public sealed class ControllerTests(DriverFixture fixture) : IClassFixture<DriverFixture>
{
    private readonly PluginProcess _driver = fixture.Driver;
    private global::Csi.V1.Controller.ControllerClient Controller => _driver.Controller;

    [Fact]
    public async Task ControllerGetCapabilities_ListsWhatIsServed()
    {
        var caps = await Controller.ControllerGetCapabilitiesAsync(new ControllerGetCapabilitiesRequest());
        var types = caps.Capabilities.Select(c => c.Rpc.Type).ToHashSet();
        Assert.Equal(new HashSet<RpcType> { RpcType.CreateDeleteVolume, RpcType.GetCapacity, RpcType.ListVolumes }, types);
    }

    public static TheoryData<string, string> BadCreateRequests => new()
    {
        { "no-name", "name" },
        { "no-capabilities", "volume_capabilities" },
        { "capability-without-mode", "access_mode" },
        { "capability-without-type", "access_type" },
    };

    [Theory]
    [MemberData(nameof(BadCreateRequests))]
    public async Task CreateVolume_MissingField_InvalidArgumentNamingIt(string shape, string field)
    {
        var request = CreateLocal(UniqueName("bad"));
        switch (shape)
        {
            case "no-name":
                request.Name = "";
                break;
            case "no-capabilities":
                request.VolumeCapabilities.Clear();
                break;
            case "capability-without-mode":
                request.VolumeCapabilities[0].AccessMode = null;
                break;
            case "capability-without-type":
                request.VolumeCapabilities[0].Mount = null;
                break;
        }

        var status = await FailsAsync(() => Controller.CreateVolumeAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
        Assert.Contains(field, status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateVolume_SameNameSameRequest_ReturnsSameVolume()
    {
        var request = CreateLocal(UniqueName("twice"));
        var first = await Controller.CreateVolumeAsync(request);
        var second = await Controller.CreateVolumeAsync(request);
        Assert.Equal(first.Volume.VolumeId, second.Volume.VolumeId);
        Assert.Equal(first.Volume.CapacityBytes, second.Volume.CapacityBytes);
        await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = first.Volume.VolumeId });
    }

    [Fact]
    public async Task CreateVolume_SameNameOtherCapacity_ReturnsAlreadyExists()
    {
        var name = UniqueName("conflict");
        var first = await Controller.CreateVolumeAsync(CreateLocal(name, 32 * MiB, 32 * MiB));
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(CreateLocal(name, 64 * MiB, 64 * MiB)));
        Assert.Equal(StatusCode.AlreadyExists, status.StatusCode);
        await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = first.Volume.VolumeId });
    }

    [Fact]
    public async Task CreateVolume_Local_HonoursCapacityAndPinsTopology()
    {
        var response = await Controller.CreateVolumeAsync(CreateLocal(UniqueName("sized"), 40 * MiB, 48 * MiB));
        try
        {
            Assert.InRange(response.Volume.CapacityBytes, 40 * MiB, 48 * MiB);
            var segments = Assert.Single(response.Volume.AccessibleTopology).Segments;
            Assert.Equal(_driver.NodeId, segments["topology.csicache.dev/node"]);
            var image = Path.Combine(_driver.LocalDir, response.Volume.VolumeId + ".img");
            Assert.Equal(response.Volume.CapacityBytes, new FileInfo(image).Length);
        }
        finally
        {
            await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = response.Volume.VolumeId });
        }
    }

    [Fact]
    public async Task CreateVolume_NoCapacityRange_GetsDefaultOneGiB()
    {
        var request = CreateLocal(UniqueName("default"));
        request.CapacityRange = null;
        var response = await Controller.CreateVolumeAsync(request);
        Assert.Equal(1L << 30, response.Volume.CapacityBytes);
        await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = response.Volume.VolumeId });
    }

    [Fact]
    public async Task CreateVolume_RequiredAboveLimit_InvalidArgument()
    {
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(CreateLocal(UniqueName("inverted"), 64 * MiB, 32 * MiB)));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
    }

    [Fact]
    public async Task CreateVolume_LimitBelowSmallestVolume_OutOfRange()
    {
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(CreateLocal(UniqueName("tiny"), 0, 1 * MiB)));
        Assert.Equal(StatusCode.OutOfRange, status.StatusCode);
    }

    [Fact]
    public async Task CreateVolume_MoreThanFreeSpace_ResourceExhausted()
    {
        var capacity = await Controller.GetCapacityAsync(new GetCapacityRequest());
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(
            CreateLocal(UniqueName("huge"), capacity.AvailableCapacity + (1L << 30))));
        Assert.Equal(StatusCode.ResourceExhausted, status.StatusCode);
        Assert.Empty(Directory.GetFiles(_driver.LocalDir, "*.tmp*"));
    }

    [Fact]
    public async Task CreateVolume_LocalMultiNodeMode_InvalidArgument()
    {
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(
            CreateLocal(UniqueName("shared"), mode: Mode.MultiNodeMultiWriter)));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
        Assert.Contains("one node", status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateVolume_Block_RefusedWithReason()
    {
        var request = CreateLocal(UniqueName("block"));
        request.VolumeCapabilities[0] = Block();
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
        Assert.Contains("block", status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateVolume_RequisiteTopologyOfOtherNode_ResourceExhausted()
    {
        var request = CreateLocal(UniqueName("elsewhere"));
        var topology = new Topology();
        topology.Segments["topology.csicache.dev/node"] = "some-other-node";
        request.AccessibilityRequirements = new TopologyRequirement();
        request.AccessibilityRequirements.Requisite.Add(topology);
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(request));
        Assert.Equal(StatusCode.ResourceExhausted, status.StatusCode);
    }

    [Fact]
    public async Task CreateVolume_Dataset_ReturnsSpecInVolumeContext()
    {
        var response = await Controller.CreateVolumeAsync(CreateDataset(UniqueName("ds"), "s3://training-data/imagenet/",
            parameters: [("subPath", "train/"), ("endpoint", "http://127.0.0.1:9000"), ("pathStyle", "True")]));
        var context = response.Volume.VolumeContext;
        Assert.StartsWith("dataset-", response.Volume.VolumeId, StringComparison.Ordinal);
        Assert.Equal("s3://training-data/imagenet/", context["source"]);
        Assert.Equal("train", context["subPath"]);
        Assert.Equal("true", context["pathStyle"]);
        Assert.Equal("disk", context["cacheMedium"]);
        Assert.Empty(response.Volume.AccessibleTopology);
        await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = response.Volume.VolumeId });
    }

    [Theory]
    [InlineData(Mode.SingleNodeWriter)]
    [InlineData(Mode.MultiNodeMultiWriter)]
    [InlineData(Mode.SingleNodeMultiWriter)]
    public async Task CreateVolume_DatasetWriterMode_RefusedAsReadOnly(Mode mode)
    {
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(
            CreateDataset(UniqueName("ds-rw"), "https://example.com/data/", mode)));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
        Assert.Contains("read-only", status.Detail, StringComparison.Ordinal);
    }

    public static TheoryData<string, string, string> BadSources => new()
    {
        { "ftp://host/data/", "", "scheme" },
        { "not a uri", "", "absolute URI" },
        { "s3://x/prefix/", "", "bucket" },
        { "https://host/data/?X-Amz-Signature=abc", "", "query" },
        { "https://host/data/", "../etc", "subPath" },
        { "https://host/data/", "/abs", "subPath" },
    };

    [Theory]
    [MemberData(nameof(BadSources))]
    public async Task CreateVolume_BadDatasetSource_InvalidArgumentSayingWhy(string source, string subPath, string expected)
    {
        var request = CreateDataset(UniqueName("bad-ds"), source);
        if (subPath.Length > 0)
        {
            request.Parameters["subPath"] = subPath;
        }

        var status = await FailsAsync(() => Controller.CreateVolumeAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
        Assert.Contains(expected, status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateVolume_CredentialsInSource_RefusedWithoutEchoingThem()
    {
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(
            CreateDataset(UniqueName("creds"), "https://admin:hunter2secret@host/data/")));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
        Assert.Contains("credentials", status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2secret", status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2secret", _driver.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateVolume_UnknownParameter_InvalidArgumentNamingIt()
    {
        var request = CreateDataset(UniqueName("typo"), "https://host/data/", parameters: ("cacheMedum", "memory"));
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
        Assert.Contains("cacheMedum", status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateVolume_DatasetSameNameOtherSource_AlreadyExists()
    {
        var name = UniqueName("ds-conflict");
        var first = await Controller.CreateVolumeAsync(CreateDataset(name, "https://host/a/"));
        var again = await Controller.CreateVolumeAsync(CreateDataset(name, "https://host/a/"));
        Assert.Equal(first.Volume.VolumeId, again.Volume.VolumeId);
        var status = await FailsAsync(() => Controller.CreateVolumeAsync(CreateDataset(name, "https://host/b/")));
        Assert.Equal(StatusCode.AlreadyExists, status.StatusCode);
        await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = first.Volume.VolumeId });
    }

    [Fact]
    public async Task CreateVolume_MaximumLengthName_Works()
    {
        var name = (UniqueName("max") + new string('x', 128))[..128];
        var response = await Controller.CreateVolumeAsync(CreateLocal(name));
        Assert.NotEmpty(response.Volume.VolumeId);
        await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = response.Volume.VolumeId });
    }

    [Fact]
    public async Task DeleteVolume_NoId_InvalidArgument()
    {
        var status = await FailsAsync(() => Controller.DeleteVolumeAsync(new DeleteVolumeRequest()));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);
        Assert.Contains("volume_id", status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeleteVolume_UnknownOrTwice_Succeeds()
    {
        await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = "never-issued" });
        var created = await Controller.CreateVolumeAsync(CreateLocal(UniqueName("del")));
        var image = Path.Combine(_driver.LocalDir, created.Volume.VolumeId + ".img");
        Assert.True(File.Exists(image));
        await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = created.Volume.VolumeId });
        Assert.False(File.Exists(image));
        await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = created.Volume.VolumeId });
    }

    [Fact]
    public async Task ValidateVolumeCapabilities_Checks()
    {
        var status = await FailsAsync(() => Controller.ValidateVolumeCapabilitiesAsync(new ValidateVolumeCapabilitiesRequest()));
        Assert.Equal(StatusCode.InvalidArgument, status.StatusCode);

        var missing = new ValidateVolumeCapabilitiesRequest { VolumeId = "local-00000000000000000000000000000000" };
        missing.VolumeCapabilities.Add(Mount());
        Assert.Equal(StatusCode.NotFound, (await FailsAsync(() => Controller.ValidateVolumeCapabilitiesAsync(missing))).StatusCode);

        var created = await Controller.CreateVolumeAsync(CreateLocal(UniqueName("validate")));
        try
        {
            var noCaps = new ValidateVolumeCapabilitiesRequest { VolumeId = created.Volume.VolumeId };
            Assert.Equal(StatusCode.InvalidArgument, (await FailsAsync(() => Controller.ValidateVolumeCapabilitiesAsync(noCaps))).StatusCode);

            var ok = new ValidateVolumeCapabilitiesRequest { VolumeId = created.Volume.VolumeId };
            ok.VolumeCapabilities.Add(Mount());
            var confirmed = await Controller.ValidateVolumeCapabilitiesAsync(ok);
            Assert.NotNull(confirmed.Confirmed);
            Assert.NotEmpty(confirmed.Confirmed.VolumeCapabilities);

            var shared = new ValidateVolumeCapabilitiesRequest { VolumeId = created.Volume.VolumeId };
            shared.VolumeCapabilities.Add(Mount(Mode.MultiNodeMultiWriter));
            var refused = await Controller.ValidateVolumeCapabilitiesAsync(shared);
            Assert.Null(refused.Confirmed);
            Assert.Contains("one node", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = created.Volume.VolumeId });
        }
    }

    [Fact]
    public async Task ListVolumes_ShowsCreatedHidesDeletedAndPages()
    {
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await Controller.CreateVolumeAsync(CreateLocal(UniqueName($"list{i}")))).Volume.VolumeId);
        }

        try
        {
            var all = await Controller.ListVolumesAsync(new ListVolumesRequest());
            Assert.Empty(all.NextToken);
            Assert.Subset(all.Entries.Select(e => e.Volume.VolumeId).ToHashSet(), ids.ToHashSet());

            var seen = new List<string>();
            var token = "";
            do
            {
                var page = await Controller.ListVolumesAsync(new ListVolumesRequest { MaxEntries = 2, StartingToken = token });
                Assert.InRange(page.Entries.Count, 1, 2);
                seen.AddRange(page.Entries.Select(e => e.Volume.VolumeId));
                token = page.NextToken;
            }
            while (token.Length > 0);
            Assert.Equal(all.Entries.Select(e => e.Volume.VolumeId), seen);

            var bad = await FailsAsync(() => Controller.ListVolumesAsync(new ListVolumesRequest { StartingToken = "invalid-token" }));
            Assert.Equal(StatusCode.Aborted, bad.StatusCode);
        }
        finally
        {
            foreach (var id in ids)
            {
                await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = id });
            }
        }

        var after = await Controller.ListVolumesAsync(new ListVolumesRequest());
        Assert.DoesNotContain(after.Entries, e => ids.Contains(e.Volume.VolumeId));
    }

    [Fact]
    public async Task GetCapacity_CountsWhatSparseImagesMayStillTake()
    {
        var before = (await Controller.GetCapacityAsync(new GetCapacityRequest())).AvailableCapacity;
        var created = await Controller.CreateVolumeAsync(CreateLocal(UniqueName("cap"), 512 * MiB));
        try
        {
            var after = (await Controller.GetCapacityAsync(new GetCapacityRequest())).AvailableCapacity;
            // The image is sparse, but its bytes are promised: free capacity drops by about its size
            // (other processes may touch the disk, so allow 64 MiB of noise either way).
            Assert.InRange(before - after, 448 * MiB, 576 * MiB);
        }
        finally
        {
            await Controller.DeleteVolumeAsync(new DeleteVolumeRequest { VolumeId = created.Volume.VolumeId });
        }

        var elsewhere = new GetCapacityRequest { AccessibleTopology = new Topology() };
        elsewhere.AccessibleTopology.Segments["topology.csicache.dev/node"] = "another-node";
        Assert.Equal(0, (await Controller.GetCapacityAsync(elsewhere)).AvailableCapacity);

        // Dataset classes take no local space; the scheduler must not filter nodes out for them.
        var dataset = new GetCapacityRequest();
        dataset.Parameters["source"] = "https://host/data/";
        Assert.True((await Controller.GetCapacityAsync(dataset)).AvailableCapacity >= 1L << 50);
    }

    [Fact]
    public async Task UnofferedRpc_Unimplemented()
    {
        var status = await FailsAsync(() => Controller.ControllerPublishVolumeAsync(new ControllerPublishVolumeRequest()));
        Assert.Equal(StatusCode.Unimplemented, status.StatusCode);
    }
}
