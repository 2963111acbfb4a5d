using Csi.V1;
using CsiCache.Controller;
using Grpc.Core;

namespace CsiCache.Controller.Tests;

public sealed class ControllerRulesTests
{
    [Fact]
    public void VolumeIds_DeterministicPerNameAndKind_AndRecognised()
    {
        var a = VolumeIds.For(VolumeKind.Local, "pvc-123");
        Assert.Equal(a, VolumeIds.For(VolumeKind.Local, "pvc-123"));
        Assert.NotEqual(a, VolumeIds.For(VolumeKind.Local, "pvc-124"));
        Assert.True(VolumeIds.TryParse(a, out var kind));
        Assert.Equal(VolumeKind.Local, kind);
        Assert.True(VolumeIds.TryParse(VolumeIds.For(VolumeKind.Dataset, "pvc-123"), out kind));
        Assert.Equal(VolumeKind.Dataset, kind);
        Assert.False(VolumeIds.TryParse("local-XYZ", out _));
        Assert.False(VolumeIds.TryParse("fake-volume-id", out _));
        Assert.True(a.Length <= 128, "the spec bounds ids at 128 bytes");
    }

    [Theory]
    [InlineData(0, 0, 16, 1L << 30)]                        // nothing asked: the default
    [InlineData(0, 100L << 20, 16, 100L << 20)]             // only a limit: the default, capped
    [InlineData(5, 0, 16, 16L << 20)]                       // tiny: the minimum
    [InlineData((10L << 20) + 1, 0, 1, 11L << 20)]          // rounded up to whole MiB
    public void ChooseLocalSize_Rules(long required, long limit, long minimumMiB, long expected)
    {
        var size = ControllerService.ChooseLocalSize(new CapacityRange { RequiredBytes = required, LimitBytes = limit }, minimumMiB << 20);
        Assert.Equal(expected, size);
    }

    [Fact]
    public void ChooseLocalSize_LimitBelowMinimum_OutOfRange()
    {
        var error = Assert.Throws<RpcException>(() =>
            ControllerService.ChooseLocalSize(new CapacityRange { LimitBytes = 1 << 20 }, 16 << 20));
        Assert.Equal(StatusCode.OutOfRange, error.StatusCode);
    }

    [Theory]
    [InlineData("30s", 30)]
    [InlineData("10m", 600)]
    [InlineData("1h30m", 5400)]
    [InlineData("00:05:00", 300)]
    [InlineData("2d", 172800)]
    public void TryParseDuration_KubernetesAndTimeSpanForms(string text, int seconds)
    {
        Assert.True(DatasetParameters.TryParseDuration(text, out var duration));
        Assert.Equal(TimeSpan.FromSeconds(seconds), duration);
    }

    [Theory]
    [InlineData("soon")]
    [InlineData("10x")]
    [InlineData("-5s")]
    public void TryParseDuration_Rejects(string text) => Assert.False(DatasetParameters.TryParseDuration(text, out _));

    [Fact]
    public void ToVolumeContext_RefreshNeverAndAnonymousS3_Accepted_AndSubSecondRefreshRefused()
    {
        var context = DatasetParameters.ToVolumeContext(new Dictionary<string, string>
        {
            ["source"] = "s3://public-data/", ["anonymous"] = "True", ["refresh"] = "never",
        });
        Assert.Equal("true", context["anonymous"]);
        Assert.Equal("never", context["refresh"]);
        var error = Assert.Throws<RpcException>(() => DatasetParameters.ToVolumeContext(new Dictionary<string, string>
        {
            ["source"] = "https://host/data/", ["refresh"] = "500ms",
        }));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Throws<RpcException>(() => DatasetParameters.ToVolumeContext(new Dictionary<string, string>
        {
            ["source"] = "https://host/data/", ["anonymous"] = "true",
        }));
    }

    [Fact]
    public void ToVolumeContext_IgnoresKubernetesKeys_AndNormalises()
    {
        var context = DatasetParameters.ToVolumeContext(new Dictionary<string, string>
        {
            ["source"] = "file:///data/sets/",
            ["subPath"] = "a//b/",
            ["csi.storage.k8s.io/pvc/name"] = "claim",
        });
        Assert.Equal("a/b", context["subPath"]);
        Assert.False(context.ContainsKey("csi.storage.k8s.io/pvc/name"));
        Assert.Equal("dataset", context["csicache.dev/kind"]);
    }
}
