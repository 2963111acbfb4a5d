using Csi.V1;
using CsiCache.Csi;

namespace CsiCache.Csi.Tests;

public sealed class SecretRedactorTests
{
    [Fact]
    public void Redact_ClearsEveryCsiSecretField_AndLeavesTheRest()
    {
        var request = new NodeStageVolumeRequest { VolumeId = "dataset-abc", StagingTargetPath = "/staging" };
        request.Secrets["secretAccessKey"] = "s3cr3t-value";
        request.VolumeContext["source"] = "s3://bucket/prefix/";

        var redacted = (NodeStageVolumeRequest)SecretRedactor.Redact(request);

        Assert.Empty(redacted.Secrets);
        Assert.Equal("dataset-abc", redacted.VolumeId);
        Assert.Equal("s3://bucket/prefix/", redacted.VolumeContext["source"]);
        // The original is untouched: the handler still needs the secret.
        Assert.Equal("s3cr3t-value", request.Secrets["secretAccessKey"]);
    }

    [Fact]
    public void Redact_FindsSecretsByOption_InEveryRequestThatHasThem()
    {
        // Every CSI request with a csi_secret field must come out without it.
        var messages = typeof(CreateVolumeRequest).Assembly.GetTypes()
            .Where(t => t.Namespace == "Csi.V1" && t.Name.EndsWith("Request", StringComparison.Ordinal)
                && t.GetProperty("Secrets")?.PropertyType.Name.StartsWith("MapField", StringComparison.Ordinal) == true)
            .ToList();
        Assert.True(messages.Count >= 10, $"expected the spec's secret-bearing requests, found {messages.Count}");
        foreach (var type in messages)
        {
            var message = (Google.Protobuf.IMessage)Activator.CreateInstance(type)!;
            var secrets = (Google.Protobuf.Collections.MapField<string, string>)type.GetProperty("Secrets")!.GetValue(message)!;
            secrets["token"] = "leak";
            var text = SecretRedactor.ToLogString(message);
            Assert.DoesNotContain("leak", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ToLogString_MasksCredentialsWrittenIntoAUri()
    {
        var request = new CreateVolumeRequest { Name = "pvc-1" };
        request.Parameters["source"] = "https://admin:pa55word@host/data/";
        var text = SecretRedactor.ToLogString(request);
        Assert.DoesNotContain("pa55word", text, StringComparison.Ordinal);
        Assert.Contains("https://***@host/data/", text, StringComparison.Ordinal);
    }
}
