namespace CsiCache.Origins.S3;

internal sealed class S3Origin : IOrigin
{
    public S3Origin(DatasetSource source, S3Credentials credentials, OriginOptions options)
    {
        Identity = source.Identity;
        _ = credentials;
        _ = options;
    }

    public string Identity { get; }

    public Task<OriginListPage> ListAsync(string directoryPath, string? continuationToken, CancellationToken ct) => throw new NotImplementedException();

    public Task<OriginObject> StatAsync(string path, CancellationToken ct) => throw new NotImplementedException();

    public Task<int> ReadAsync(OriginObject obj, long offset, Memory<byte> destination, CancellationToken ct) => throw new NotImplementedException();

    public void Dispose()
    {
    }
}
