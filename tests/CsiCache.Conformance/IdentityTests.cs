using Csi.V1;
using ServiceType = Csi.V1.PluginCapability.Types.Service.Types.Type;

namespace CsiCache.Conformance;

public sealed class IdentityTests(DriverFixture fixture) : IClassFixture<DriverFixture>
{
    private readonly PluginProcess _driver = fixture.Driver;

    [Fact]
    public async Task GetPluginInfo_ReturnsDriverNameAndVersion()
    {
        var info = await _driver.Identity.GetPluginInfoAsync(new GetPluginInfoRequest());
        Assert.Equal("csicache.dev", info.Name);
        Assert.Matches(@"^\d+\.\d+\.\d+", info.VendorVersion);
    }

    [Fact]
    public async Task GetPluginCapabilities_OffersControllerAndTopology()
    {
        var caps = await _driver.Identity.GetPluginCapabilitiesAsync(new GetPluginCapabilitiesRequest());
        var types = caps.Capabilities.Select(c => c.Service.Type).ToList();
        Assert.Contains(ServiceType.ControllerService, types);
        Assert.Contains(ServiceType.VolumeAccessibilityConstraints, types);
    }

    [Fact]
    public async Task Probe_WritableStateDir_IsReady()
    {
        var probe = await _driver.Identity.ProbeAsync(new ProbeRequest());
        Assert.True(probe.Ready);
    }

    [Fact]
    public async Task Calls_AreIdempotent()
    {
        var first = await _driver.Identity.GetPluginInfoAsync(new GetPluginInfoRequest());
        var second = await _driver.Identity.GetPluginInfoAsync(new GetPluginInfoRequest());
        Assert.Equal(first, second);
    }
}
