using CsiCache.Datasets;
using CsiCache.Node.Staging;
using Grpc.Core;
using static CsiCache.EndToEnd.Datasets;

namespace CsiCache.EndToEnd;

/// <summary>How dataset failures reach kubelet: one CSI code per kind, a message that says why and carries no secret.</summary>
public sealed class StagerErrorTests(PluginFixture fixture) : IClassFixture<PluginFixture>
{
    [Theory]
    [InlineData(DatasetErrorKind.InvalidSource, StatusCode.InvalidArgument)]
    [InlineData(DatasetErrorKind.NotFound, StatusCode.NotFound)]
    [InlineData(DatasetErrorKind.OriginUnavailable, StatusCode.Unavailable)]
    [InlineData(DatasetErrorKind.AccessDenied, StatusCode.PermissionDenied)]
    [InlineData(DatasetErrorKind.MountFailed, StatusCode.Internal)]
    public void CodeFor_EachKind_TheCodeKubeletActsOn(DatasetErrorKind kind, StatusCode expected) =>
        Assert.Equal(expected, FuseDatasetStager.CodeFor(kind));

    [Fact]
    public void CodeFor_CoversEveryKind() =>
        Assert.All(Enum.GetValues<DatasetErrorKind>(), k => Assert.NotEqual(StatusCode.Unknown, FuseDatasetStager.CodeFor(k)));

    [Fact]
    public async Task Stage_IncompleteS3Secret_InvalidArgument_NamesTheKey_NotTheValue()
    {
        var secret = "only-a-secret-" + Guid.NewGuid().ToString("N");
        await using var kubelet = new Kubelet(fixture.Plugin);
        var volume = await kubelet.CreateDatasetAsync("s3://some-bucket/prefix/", ("endpoint", "http://127.0.0.1:9"), ("pathStyle", "true"));
        var error = await Assert.ThrowsAsync<RpcException>(() => kubelet.StageAsync(volume, new() { ["secretAccessKey"] = secret }));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("accessKeyId", error.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, error.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, fixture.Plugin.Log, StringComparison.Ordinal);
        AssertNotMounted(fixture.Plugin.Paths.StagingPath(volume.VolumeId));
    }
}
