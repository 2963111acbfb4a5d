using Grpc.Core;
using static CsiCache.EndToEnd.Datasets;

namespace CsiCache.EndToEnd;

/// <summary>Dataset volumes over a real S3-compatible server (s3rver), credentials in the node-stage secret.</summary>
public sealed class S3DatasetTests(S3Fixture fixture) : IClassFixture<S3Fixture>
{
    private const int SmallFiles = 1500;

    private PluginProcess Plugin => fixture.Plugin;
    private S3Server S3 => fixture.S3;

    private Dictionary<string, string> Secrets(string? accessKeyId = null, string? secret = null) => new()
    {
        ["accessKeyId"] = accessKeyId ?? S3.AccessKeyId,
        ["secretAccessKey"] = secret ?? S3.SecretAccessKey,
    };

    private (string Key, string Value)[] S3Parameters() =>
        [("endpoint", S3.Endpoint.AbsoluteUri.TrimEnd('/')), ("region", "us-east-1"), ("pathStyle", "true")];

    [Fact]
    public async Task ThousandsOfSmallFiles_EveryByteMatches_WarmPassMakesNoRequests_SecretsNeverLogged()
    {
        var bucket = "many-" + Guid.NewGuid().ToString("N")[..8];
        var data = ManySmall(Path.Combine(Plugin.Root, "origins", bucket), SmallFiles);
        await S3.UploadAsync(bucket, "train/", data.Root);

        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync($"s3://{bucket}/train/", S3Parameters());
        var target = await kubelet.MountForPodAsync(volume, Secrets());

        var beforeCold = S3.RequestsFor(bucket);
        AssertEveryByte(target, data);
        Assert.True(S3.RequestsFor(bucket) > beforeCold, "a cold read must have gone to S3");

        // Both ends of the warm window settled: a cold request logged late (CI once counted 58 of
        // them in the window) is not a warm one, and a warm one logged late is still counted.
        var quiet = TimeSpan.FromMilliseconds(500);
        var beforeWarm = await S3.SettledRequestsForAsync(bucket, quiet, TestContext.Current.CancellationToken);
        AssertEveryByte(target, data);
        Assert.Equal(0, await S3.SettledRequestsForAsync(bucket, quiet, TestContext.Current.CancellationToken) - beforeWarm);

        // The plugin runs at Debug, where every request is logged (redacted).
        Assert.Contains("NodeStageVolume", Plugin.Log, StringComparison.Ordinal);
        Assert.DoesNotContain(S3.SecretAccessKey, Plugin.Log, StringComparison.Ordinal);
        Assert.DoesNotContain(S3.AccessKeyId, Plugin.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoVolumes_DifferentCredentials_DoNotShareASession()
    {
        var bucket = "creds-" + Guid.NewGuid().ToString("N")[..8];
        // One level of directories: s3rver 3.7 leaves out a common prefix that holds only deeper prefixes (see S3Server).
        var data = ManySmall(Path.Combine(Plugin.Root, "origins", bucket), files: 60, seed: 3);
        await S3.UploadAsync(bucket, "data/", data.Root);

        await using var kubelet = new Kubelet(Plugin);
        var first = await kubelet.CreateDatasetAsync($"s3://{bucket}/data/", S3Parameters());
        var second = await kubelet.CreateDatasetAsync($"s3://{bucket}/data/", S3Parameters());
        AssertEveryByte(await kubelet.MountForPodAsync(first, Secrets()), data);
        var fuseBefore = HostMounts.Under(Plugin.Root).Count(m => m.IsFuse);

        // The second volume's secret is not the first's: it must be checked by the origin, not
        // ride on the first volume's session. s3rver refuses the unknown key, so sharing would show as success.
        var error = await Assert.ThrowsAsync<RpcException>(() => kubelet.StageAsync(second, Secrets(accessKeyId: "AKIAOTHERKEY00000000")));
        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
        Assert.Equal(fuseBefore, HostMounts.Under(Plugin.Root).Count(m => m.IsFuse));
    }

    [Fact]
    public async Task Stage_BucketThatDoesNotExist_NotFound_NothingMounted()
    {
        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync($"s3://no-such-bucket-{Guid.NewGuid():N}"[..40] + "/", S3Parameters());
        var error = await Assert.ThrowsAsync<RpcException>(() => kubelet.StageAsync(volume, Secrets()));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        AssertNotMounted(Plugin.Paths.StagingPath(volume.VolumeId));
    }

    [Fact]
    public async Task Stage_UnknownAccessKey_PermissionDenied_AndTheSecretIsNowhere()
    {
        var bucket = "denied-" + Guid.NewGuid().ToString("N")[..8];
        var data = Small(Path.Combine(Plugin.Root, "origins", bucket), seed: 99);
        await S3.UploadAsync(bucket, "", data.Root);
        // s3rver checks the access key id, not the SigV4 signature: an unknown key is the 403 it can give.
        var wrongKey = "AKIAWRONG" + Guid.NewGuid().ToString("N")[..11].ToUpperInvariant();
        var wrongSecret = "wrong-" + Guid.NewGuid().ToString("N");

        await using var kubelet = new Kubelet(Plugin);
        var volume = await kubelet.CreateDatasetAsync($"s3://{bucket}/", S3Parameters());
        var error = await Assert.ThrowsAsync<RpcException>(() => kubelet.StageAsync(volume, Secrets(wrongKey, wrongSecret)));

        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
        foreach (var secret in new[] { wrongKey, wrongSecret })
        {
            Assert.DoesNotContain(secret, error.Status.Detail, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, Plugin.Log, StringComparison.Ordinal);
        }
        AssertNotMounted(Plugin.Paths.StagingPath(volume.VolumeId));
    }
}
