using System.Collections.Concurrent;
using CsiCache.Origins;

namespace CsiCache.Datasets.Tests;

/// <summary>
/// An origin held in memory for tree tests: directories of entries, paged like S3 (sorted, the
/// token is the last name), file contents generated on demand so a directory can claim terabytes
/// without holding them. Counts every call.
/// </summary>
internal sealed class InMemoryOrigin : IOrigin
{
    private readonly ConcurrentDictionary<string, SortedDictionary<string, OriginEntry>> _directories = new();
    private readonly int _pageSize;
    private int _listCalls;
    private int _statCalls;
    private int _readCalls;

    public InMemoryOrigin(int pageSize = 1000, bool listVersions = true)
    {
        _pageSize = pageSize;
        ListVersions = listVersions;
        _directories[""] = new SortedDictionary<string, OriginEntry>(StringComparer.Ordinal);
    }

    /// <summary>False: listings carry no version (like HTTP autoindex), so files must be stat'ed.</summary>
    public bool ListVersions { get; }

    public string Identity => "mem://test/";

    public int ListCalls => _listCalls;

    public int StatCalls => _statCalls;

    public int ReadCalls => _readCalls;

    public void AddFile(string path, long size, string version = "v1")
    {
        (string dir, string name) = Split(path);
        AddDirectory(dir);
        _directories[dir][name] = new OriginEntry(name, OriginEntryKind.File, size, DateTimeOffset.UnixEpoch, version);
    }

    public void AddDirectory(string path)
    {
        if (path.Length == 0 || _directories.ContainsKey(path))
        {
            return;
        }
        (string parent, string name) = Split(path);
        AddDirectory(parent);
        _directories[path] = new SortedDictionary<string, OriginEntry>(StringComparer.Ordinal);
        _directories[parent][name] = new OriginEntry(name, OriginEntryKind.Directory, 0, null, null);
    }

    public Task<OriginListPage> ListAsync(string directoryPath, string? continuationToken, CancellationToken ct)
    {
        Interlocked.Increment(ref _listCalls);
        if (!_directories.TryGetValue(directoryPath, out var entries))
        {
            throw new OriginNotFoundException($"'{directoryPath}' does not exist");
        }
        var page = new List<OriginEntry>(_pageSize);
        foreach ((string name, OriginEntry entry) in entries)
        {
            if (continuationToken is not null && string.CompareOrdinal(name, continuationToken) <= 0)
            {
                continue;
            }
            if (page.Count == _pageSize)
            {
                return Task.FromResult(new OriginListPage(page, page[^1].Name));
            }
            page.Add(ListVersions ? entry : entry with { Version = null });
        }
        return Task.FromResult(new OriginListPage(page, null));
    }

    public Task<OriginObject> StatAsync(string path, CancellationToken ct)
    {
        Interlocked.Increment(ref _statCalls);
        (string dir, string name) = Split(path);
        if (_directories.TryGetValue(dir, out var entries) && entries.TryGetValue(name, out OriginEntry? entry) && entry.Kind == OriginEntryKind.File)
        {
            return Task.FromResult(new OriginObject(path, entry.Size, entry.Version!, entry.Modified));
        }
        throw new OriginNotFoundException($"'{path}' does not exist");
    }

    public Task<int> ReadAsync(OriginObject obj, long offset, Memory<byte> destination, CancellationToken ct)
    {
        Interlocked.Increment(ref _readCalls);
        int n = (int)Math.Min(destination.Length, obj.Size - offset);
        for (int i = 0; i < n; i++)
        {
            destination.Span[i] = (byte)((offset + i) * 31 % 251);
        }
        return Task.FromResult(n);
    }

    public void Dispose()
    {
    }

    private static (string Directory, string Name) Split(string path)
    {
        int slash = path.LastIndexOf('/');
        return slash < 0 ? ("", path) : (path[..slash], path[(slash + 1)..]);
    }
}

/// <summary>A clock the test moves by hand (the TTL logic only reads timestamps).</summary>
internal sealed class ManualTime : TimeProvider
{
    private long _ticks = 1_000_000;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
