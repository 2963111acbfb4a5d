namespace CsiCache.Fuse;

/// <summary>
/// Where the dispatcher sends a finished reply: the device descriptor the request came from (a
/// reply must go back on the same cloned descriptor), or a list in tests. Called from reader
/// threads and, for reads that completed asynchronously, from thread-pool threads; one call is
/// one whole reply.
/// </summary>
public interface IFuseReplySink
{
    void Send(ReadOnlySpan<byte> reply);
}
