namespace CsiCache.Datasets;

/// <summary>
/// Counters of one mount, also rolled up into the host's. Plain interlocked adds: the READ hit
/// path pays two of them, no allocation.
/// </summary>
internal sealed class MountCounters(MountCounters? parent = null)
{
    private long _originRequests;
    private long _originBytes;
    private long _hits;
    private long _misses;
    private long _bytesServed;

    public long OriginRequests => Interlocked.Read(ref _originRequests);
    public long OriginBytes => Interlocked.Read(ref _originBytes);
    public long Hits => Interlocked.Read(ref _hits);
    public long Misses => Interlocked.Read(ref _misses);
    public long BytesServed => Interlocked.Read(ref _bytesServed);

    public void OriginRequest()
    {
        Interlocked.Increment(ref _originRequests);
        parent?.OriginRequest();
    }

    public void OriginRead(long bytes)
    {
        Interlocked.Add(ref _originBytes, bytes);
        parent?.OriginRead(bytes);
    }

    public void Hit()
    {
        Interlocked.Increment(ref _hits);
        parent?.Hit();
    }

    public void Miss()
    {
        Interlocked.Increment(ref _misses);
        parent?.Miss();
    }

    public void Served(long bytes)
    {
        Interlocked.Add(ref _bytesServed, bytes);
        parent?.Served(bytes);
    }
}
