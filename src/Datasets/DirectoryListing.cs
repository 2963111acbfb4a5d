namespace CsiCache.Datasets;

/// <summary>
/// The entries of one directory as far as they have been listed: pages are fetched from the
/// origin only when a READDIR or a LOOKUP gets past what is loaded, so opening a directory of
/// 100,000 entries costs one page, and memory grows with the names listed, never with file sizes.
/// A refresh replaces the whole object (open directory handles keep reading the old one, so their
/// offsets stay valid).
/// </summary>
internal sealed class DirectoryListing
{
    private readonly Lock _gate = new();
    private readonly List<DatasetEntry> _entries = [];
    private readonly Dictionary<string, DatasetEntry> _byName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DatasetEntry>.AlternateLookup<ReadOnlySpan<char>> _byNameSpan;
    private string? _token;
    private bool _complete;

    public DirectoryListing(DatasetEntry directory, long createdTicks)
    {
        Directory = directory;
        CreatedTicks = createdTicks;
        _byNameSpan = _byName.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public DatasetEntry Directory { get; }

    /// <summary>When this listing started (for the refresh TTL).</summary>
    public long CreatedTicks { get; }

    /// <summary>One page load at a time; others wait for it and then look again.</summary>
    public SemaphoreSlim Loading { get; } = new(1, 1);

    /// <summary>Pages fetched so far.</summary>
    public int PagesLoaded { get; private set; }

    public bool IsComplete
    {
        get
        {
            lock (_gate)
            {
                return _complete;
            }
        }
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>The continuation token for the next page (null before the first page and after the last).</summary>
    public string? ContinuationToken
    {
        get
        {
            lock (_gate)
            {
                return _token;
            }
        }
    }

    public bool TryGet(int index, out DatasetEntry entry)
    {
        lock (_gate)
        {
            if ((uint)index < (uint)_entries.Count)
            {
                entry = _entries[index];
                return true;
            }
        }
        entry = null!;
        return false;
    }

    public bool TryFind(ReadOnlySpan<char> name, out DatasetEntry entry)
    {
        lock (_gate)
        {
            return _byNameSpan.TryGetValue(name, out entry!);
        }
    }

    /// <summary>Appends one page (called with <see cref="Loading"/> held). A name seen before is kept once.</summary>
    public void AddPage(IEnumerable<DatasetEntry> entries, string? nextToken)
    {
        lock (_gate)
        {
            foreach (DatasetEntry entry in entries)
            {
                if (_byName.TryAdd(entry.Name, entry))
                {
                    _entries.Add(entry);
                }
            }
            _token = nextToken;
            _complete = nextToken is null;
            PagesLoaded++;
        }
    }
}
