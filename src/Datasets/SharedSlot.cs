namespace CsiCache.Datasets;

/// <summary>
/// The one state every handle-0 request of a node shares under zero-message opens or opendirs,
/// where the kernel opens without telling us: made by the first such request, replaced only when
/// it no longer fits, taken away when the kernel forgets the node. A struct field of the node, so
/// a tree of 20,000 entries costs no extra objects: use it in place, never through a copy.
/// </summary>
internal struct SharedSlot<T>
    where T : class
{
    private T? _value;

    /// <summary>The state in place, if any.</summary>
    public T? Value => Volatile.Read(ref _value);

    /// <summary>
    /// The state in place when <paramref name="fits"/> accepts it, else a new one from
    /// <paramref name="create"/>, installed; racing callers agree on one. <paramref name="wasEmpty"/>
    /// says the slot held nothing before (the caller counts states, not requests).
    /// </summary>
    public T GetOrInstall<TArg>(TArg arg, Func<T, TArg, bool> fits, Func<TArg, T> create, out bool wasEmpty)
    {
        T? created = null;
        while (true)
        {
            T? current = Volatile.Read(ref _value);
            if (current is not null && fits(current, arg))
            {
                wasEmpty = false;
                return current;
            }
            created ??= create(arg);
            if (ReferenceEquals(Interlocked.CompareExchange(ref _value, created, current), current))
            {
                wasEmpty = current is null;
                return created;
            }
        }
    }

    /// <summary>Removes the state; returns what was there.</summary>
    public T? Take() => Interlocked.Exchange(ref _value, null);
}
