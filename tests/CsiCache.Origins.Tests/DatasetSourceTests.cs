namespace CsiCache.Origins.Tests;

public class DatasetSourceTests
{
    private static Dictionary<string, string> P(params string[] kv)
    {
        var d = new Dictionary<string, string>();
        for (int i = 0; i < kv.Length; i += 2)
            d[kv[i]] = kv[i + 1];
        return d;
    }

    [Fact]
    public void Parse_S3WithEndpoint_DefaultsPathStyleAndRegion()
    {
        var s = DatasetSource.Parse("s3://my-bucket/data/train", P("endpoint", "http://127.0.0.1:9000/"));
        Assert.Equal(OriginKind.S3, s.Kind);
        Assert.Equal("my-bucket", s.S3!.Bucket);
        Assert.Equal("data/train/", s.S3.Prefix);
        Assert.True(s.S3.PathStyle);
        Assert.Equal("us-east-1", s.S3.Region);
        Assert.False(s.S3.Anonymous);
        Assert.Equal("s3://my-bucket/data/train/?endpoint=" + Uri.EscapeDataString("http://127.0.0.1:9000"), s.Identity);
    }

    [Fact]
    public void Parse_S3OnAws_VirtualHostStyleAndRegionParameter()
    {
        var s = DatasetSource.Parse("s3://bucket.example", P("region", "eu-west-3", "subPath", "a/b/"));
        Assert.False(s.S3!.PathStyle);
        Assert.Null(s.S3.Endpoint);
        Assert.Equal("eu-west-3", s.S3.Region);
        Assert.Equal("a/b/", s.S3.Prefix);
        Assert.Equal("a/b", s.SubPath);
        Assert.Equal("s3://bucket.example/a/b/", s.Identity);
    }

    [Fact]
    public void Parse_SameS3DataDifferentSpelling_SameIdentity()
    {
        var a = DatasetSource.Parse("s3://b1k/x/", P("endpoint", "HTTP://LocalHost:9000"));
        var b = DatasetSource.Parse("s3://b1k/x", P("endpoint", "http://localhost:9000/", "pathStyle", "false"));
        Assert.Equal(a.Identity, b.Identity);
    }

    [Fact]
    public void Parse_HttpDirectory_RootEndsInSlash()
    {
        var s = DatasetSource.Parse("https://Data.Example.org:443/pub/sets/", P("subPath", "imagenet/train"));
        Assert.Equal(OriginKind.Http, s.Kind);
        Assert.Equal("https://data.example.org/pub/sets/imagenet/train/", s.HttpRoot!.AbsoluteUri);
        Assert.Null(s.SingleFileName);
        Assert.Equal(s.HttpRoot.AbsoluteUri, s.Identity);
    }

    [Fact]
    public void Parse_HttpFileUrl_SingleFileInParentRoot()
    {
        var s = DatasetSource.Parse("http://127.0.0.1:8080/models/my%20model.bin", TestData.NoParameters);
        Assert.Equal("my model.bin", s.SingleFileName);
        Assert.Equal("http://127.0.0.1:8080/models/", s.HttpRoot!.AbsoluteUri);
    }

    [Fact]
    public void Parse_FileUri_NormalisesPath()
    {
        var s = DatasetSource.Parse("file:///mnt/nfs//data%20set/", P("subPath", "v1"));
        Assert.Equal(OriginKind.Posix, s.Kind);
        Assert.Equal("/mnt/nfs/data set/v1", s.PosixRoot);
        Assert.Equal("file:///mnt/nfs/data%20set/v1/", s.Identity);
    }

    public static TheoryData<string, string[], string> Invalid => new()
    {
        { "", [], "'source'" },
        { "ftp://host/dir/", [], "'source'" },
        { "/abs/path", [], "'source'" },
        { "s3://UPPER/x", [], "'source'" },
        { "s3://b1k/../x/", [], "'source'" },
        { "https://host/a/../b/", [], "'source'" },
        { "https://host/a/%2e%2e/b/", [], "'source'" },
        { "https://host/dir/?sig=abc", [], "'source'" },
        { "https://host/dir/#frag", [], "'source'" },
        { "file://remote-host/data", [], "'source'" },
        { "s3://bucket/x/", ["subPath", "../etc"], "'subPath'" },
        { "s3://bucket/x/", ["subPath", "/abs"], "'subPath'" },
        { "s3://bucket/x/", ["subPath", "a//b"], "'subPath'" },
        { "https://host/file.bin", ["subPath", "a"], "'subPath'" },
        { "s3://bucket/x/", ["pathStyle", "yes"], "'pathStyle'" },
        { "s3://bucket/x/", ["anonymous", "1"], "'anonymous'" },
        { "s3://bucket/x/", ["region", "US East"], "'region'" },
        { "s3://bucket/x/", ["endpoint", "ftp://host"], "'endpoint'" },
        { "s3://bucket/x/", ["endpoint", "http://host:9000/?x=1"], "'endpoint'" },
        { "https://host/dir/", ["endpoint", "http://host:9000"], "'endpoint'" },
        { "file:///data", ["region", "us-east-1"], "'region'" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Parse_Invalid_ThrowsNamingTheParameter(string uri, string[] parameters, string named)
    {
        var e = Assert.Throws<OriginInvalidSourceException>(() => DatasetSource.Parse(uri, P(parameters)));
        Assert.Contains(named, e.Message);
    }

    [Theory]
    [InlineData("https://alice:hunter2-secret@host/dir/")]
    [InlineData("s3://AKIAEXAMPLE:hunter2-secret@bucket/x/")]
    [InlineData("http://hunter2-secret@127.0.0.1/x/")]
    public void Parse_CredentialsInUri_RefusedWithoutEchoingThem(string uri)
    {
        var e = Assert.Throws<OriginInvalidSourceException>(() => DatasetSource.Parse(uri, TestData.NoParameters));
        Assert.Contains("credentials", e.Message);
        Assert.DoesNotContain("hunter2", e.Message);
    }

    [Fact]
    public void Parse_CredentialsInEndpoint_RefusedWithoutEchoingThem()
    {
        var e = Assert.Throws<OriginInvalidSourceException>(() =>
            DatasetSource.Parse("s3://bucket/x/", P("endpoint", "http://key:hunter2-secret@minio:9000")));
        Assert.Contains("'endpoint'", e.Message);
        Assert.DoesNotContain("hunter2", e.Message);
    }

    [Fact]
    public void Parse_UnknownParameters_Ignored()
    {
        var s = DatasetSource.Parse("file:///data", P("cacheMedium", "memory", "prefetch", "all"));
        Assert.Equal("/data", s.PosixRoot);
    }

    [Fact]
    public void Create_S3SecretsIncomplete_NamesTheMissingSecretOnly()
    {
        var source = DatasetSource.Parse("s3://bucket/x/", P("endpoint", "http://127.0.0.1:1"));
        var e = Assert.Throws<OriginInvalidSourceException>(() =>
            OriginFactory.Create(source, P("accessKeyId", "AKIDVISIBLE"), new OriginOptions()));
        Assert.Contains("'secretAccessKey'", e.Message);
        e = Assert.Throws<OriginInvalidSourceException>(() =>
            OriginFactory.Create(source, P("secretAccessKey", "hunter2-secret"), new OriginOptions()));
        Assert.Contains("'accessKeyId'", e.Message);
        Assert.DoesNotContain("hunter2", e.Message);
    }

    [Fact]
    public void Create_AnonymousWithSecrets_Refused()
    {
        var source = DatasetSource.Parse("s3://bucket/x/", P("endpoint", "http://127.0.0.1:1", "anonymous", "true"));
        var e = Assert.Throws<OriginInvalidSourceException>(() =>
            OriginFactory.Create(source, P("accessKeyId", "a", "secretAccessKey", "hunter2-secret"), new OriginOptions()));
        Assert.Contains("'anonymous'", e.Message);
        Assert.DoesNotContain("hunter2", e.Message);
    }

    [Fact]
    public void Create_OriginIdentity_IsTheSourceIdentity()
    {
        foreach (string uri in new[] { "file:///tmp/x", "https://host/dir/", "s3://bucket/p/" })
        {
            var source = DatasetSource.Parse(uri, uri.StartsWith("s3") ? P("anonymous", "true", "endpoint", "http://127.0.0.1:1") : P());
            using var origin = OriginFactory.Create(source, null, new OriginOptions());
            Assert.Equal(source.Identity, origin.Identity);
        }
    }
}
