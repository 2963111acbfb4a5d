namespace CsiCache.Cache.Tests;

public sealed class ObjectKeyTests
{
    [Fact]
    public void From_SameInputs_SameKey()
    {
        ObjectKey a = ObjectKey.From("s3://bucket", "dir/file", "\"etag\"");
        ObjectKey b = ObjectKey.From("s3://bucket", "dir/file", "\"etag\"");
        Assert.Equal(a, b);
        Assert.Equal(ObjectKey.HashLength, a.Hash.Length);
        Assert.True(a.IsValid);
    }

    [Theory]
    [InlineData("s3://bucket", "dir/file", "v2")]
    [InlineData("s3://other", "dir/file", "v1")]
    [InlineData("s3://bucket", "dir/file2", "v1")]
    [InlineData("s3://bucket/dir", "file", "v1")]
    [InlineData("s3://bucket", "dir/filev1", "")]
    public void From_AnyPartDiffers_OtherKey(string origin, string path, string version)
    {
        Assert.NotEqual(ObjectKey.From("s3://bucket", "dir/file", "v1"), ObjectKey.From(origin, path, version));
    }

    [Theory]
    [InlineData("0123456789abcdef0123456789abcdef", true)]
    [InlineData("0123456789ABCDEF0123456789abcdef", false)]
    [InlineData("0123456789abcdef0123456789abcde", false)]
    [InlineData("0123456789abcdef0123456789abcdeg", false)]
    [InlineData("../../../../../../etc/passwd00000", false)]
    public void TryParse_AcceptsOnlyLowercaseHexOfTheRightLength(string text, bool valid)
    {
        Assert.Equal(valid, ObjectKey.TryParse(text, out ObjectKey key));
        Assert.Equal(valid, key.IsValid);
    }

    [Fact]
    public void Default_IsNotValid() => Assert.False(default(ObjectKey).IsValid);
}
