using Csi.V1;
using Grpc.Core;

namespace CsiCache.Csi;

/// <summary>What the Identity service reports about this plugin process.</summary>
public sealed record PluginIdentity(string DriverName, string Version, bool ServesController, string? StateDirectory);

/// <summary>
/// CSI Identity: name and version, which services this process offers, and readiness.
/// Readiness means "can keep its promises": the node plugin records every staged volume in
/// its state directory, so a read-only or full state directory makes it not ready.
/// </summary>
public sealed class IdentityService(PluginIdentity identity) : Identity.IdentityBase
{
    public override Task<GetPluginInfoResponse> GetPluginInfo(GetPluginInfoRequest request, ServerCallContext context) =>
        Task.FromResult(new GetPluginInfoResponse { Name = identity.DriverName, VendorVersion = identity.Version });

    public override Task<GetPluginCapabilitiesResponse> GetPluginCapabilities(
        GetPluginCapabilitiesRequest request, ServerCallContext context)
    {
        var response = new GetPluginCapabilitiesResponse();
        if (identity.ServesController)
        {
            response.Capabilities.Add(Service(PluginCapability.Types.Service.Types.Type.ControllerService));
        }

        response.Capabilities.Add(Service(PluginCapability.Types.Service.Types.Type.VolumeAccessibilityConstraints));
        return Task.FromResult(response);
    }

    public override Task<ProbeResponse> Probe(ProbeRequest request, ServerCallContext context) =>
        Task.FromResult(new ProbeResponse { Ready = IsStateDirectoryWritable() });

    private bool IsStateDirectoryWritable()
    {
        if (identity.StateDirectory is null)
        {
            return true;
        }

        var probe = Path.Combine(identity.StateDirectory, $".probe-{Environment.ProcessId}");
        try
        {
            File.WriteAllBytes(probe, [1]);
            File.Delete(probe);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static PluginCapability Service(PluginCapability.Types.Service.Types.Type type) =>
        new() { Service = new PluginCapability.Types.Service { Type = type } };
}
