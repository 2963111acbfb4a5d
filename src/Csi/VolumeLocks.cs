using System.Collections.Concurrent;

namespace CsiCache.Csi;

/// <summary>
/// One operation at a time per key (a volume id or a target path). The spec answers a
/// concurrent call for the same volume with ABORTED, and the CO retries; queueing would let
/// kubelet's retries pile up behind a slow mount.
/// </summary>
public sealed class VolumeLocks
{
    private readonly ConcurrentDictionary<string, byte> _held = new(StringComparer.Ordinal);

    /// <summary>Takes the lock or throws ABORTED. Dispose the result to release it.</summary>
    public IDisposable Acquire(string key)
    {
        if (!_held.TryAdd(key, 0))
        {
            throw CsiErrors.Aborted($"an operation on {key} is already in progress; retry later");
        }

        return new Release(_held, key);
    }

    private sealed class Release(ConcurrentDictionary<string, byte> held, string key) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                held.TryRemove(key, out _);
            }
        }
    }
}
