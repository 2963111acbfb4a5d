using CsiCache.Origins;

namespace CsiCache.Datasets;

/// <summary>Counts the calls a mount makes to its origin and the bytes it reads; otherwise passes through.</summary>
internal sealed class CountingOrigin(IOrigin inner, MountCounters counters) : IOrigin
{
    public string Identity => inner.Identity;

    public Task<OriginListPage> ListAsync(string directoryPath, string? continuationToken, CancellationToken ct)
    {
        counters.OriginRequest();
        return inner.ListAsync(directoryPath, continuationToken, ct);
    }

    public Task<OriginObject> StatAsync(string path, CancellationToken ct)
    {
        counters.OriginRequest();
        return inner.StatAsync(path, ct);
    }

    public async Task<int> ReadAsync(OriginObject obj, long offset, Memory<byte> destination, CancellationToken ct)
    {
        counters.OriginRequest();
        int n = await inner.ReadAsync(obj, offset, destination, ct).ConfigureAwait(false);
        counters.OriginRead(n);
        return n;
    }

    /// <summary>Counted as one request: the HTTP origin, the only one the dataset layer calls this on, makes one.</summary>
    public async Task<(OriginObject Object, int Read)> StatAndReadAsync(string path, Memory<byte> destination, CancellationToken ct)
    {
        counters.OriginRequest();
        (OriginObject obj, int n) = await inner.StatAndReadAsync(path, destination, ct).ConfigureAwait(false);
        counters.OriginRead(n);
        return (obj, n);
    }

    public Task<string?> ReadLinkAsync(string path, CancellationToken ct)
    {
        counters.OriginRequest();
        return inner.ReadLinkAsync(path, ct);
    }

    public void Dispose() => inner.Dispose();
}
