namespace CsiCache.Origins.Http;

internal sealed class HttpOrigin : IOrigin
{
    public HttpOrigin(DatasetSource source, HttpCredentials credentials, OriginOptions options)
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
