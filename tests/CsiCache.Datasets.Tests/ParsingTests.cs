namespace CsiCache.Datasets.Tests;

public sealed class ParsingTests
{
    [Theory]
    [InlineData("0", 0L)]
    [InlineData("4096", 4096L)]
    [InlineData("1Ki", 1024L)]
    [InlineData("512Mi", 512L << 20)]
    [InlineData("10Gi", 10L << 30)]
    [InlineData("10GiB", 10L << 30)]
    [InlineData("2Ti", 2L << 40)]
    [InlineData("1G", 1_000_000_000L)]
    [InlineData("1k", 1000L)]
    [InlineData("1.5Gi", 3L << 29)]
    [InlineData(" 8 Mi ", 8L << 20)]
    public void ByteSize_Parse_AcceptsKubernetesAndHumanForms(string text, long expected) =>
        Assert.Equal(expected, ByteSize.Parse(text));

    [Theory]
    [InlineData("")]
    [InlineData("ten")]
    [InlineData("-1")]
    [InlineData("5Xi")]
    [InlineData("1m")]
    [InlineData("99999999999Ei")]
    [InlineData("Gi")]
    public void ByteSize_Parse_RejectsWithTheAcceptedForms(string text)
    {
        FormatException e = Assert.Throws<FormatException>(() => ByteSize.Parse(text));
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
    }

    [Theory]
    [InlineData("0", "Off")]
    [InlineData("1", "Always")]
    [InlineData(null, "Auto")]
    [InlineData("", "Auto")] // what the bench passes for its plain "csicache" tool
    [InlineData("yes", "Auto")]
    [InlineData("2", "Auto")]
    public void PassthroughSetting_FromTheEnvironment_DefaultsToAuto(string? value, string expected) =>
        Assert.Equal(expected, PassthroughModes.Parse(value).ToString());

    [Fact]
    public void ByteSize_Format_IsReadable()
    {
        Assert.Equal("512 B", ByteSize.Format(512));
        Assert.Equal("1.5 GiB", ByteSize.Format(3L << 29));
    }

    [Theory]
    [InlineData("30s", 30)]
    [InlineData("10m", 600)]
    [InlineData("1h", 3600)]
    [InlineData("1h30m", 5400)]
    [InlineData("1500ms", 1.5)]
    [InlineData("2d", 172800)]
    public void Parameters_Refresh_ParsesDurations(string text, double seconds)
    {
        DatasetParameters p = DatasetParameters.Parse(new Dictionary<string, string> { ["refresh"] = text });
        Assert.Equal(TimeSpan.FromSeconds(seconds), p.Refresh);
    }

    [Theory]
    [InlineData("never")]
    [InlineData("0")]
    public void Parameters_RefreshNever_IsImmutable(string text) =>
        Assert.Null(DatasetParameters.Parse(new Dictionary<string, string> { ["refresh"] = text }).Refresh);

    [Theory]
    [InlineData("refresh", "500ms")]
    [InlineData("refresh", "10")]
    [InlineData("refresh", "1y")]
    [InlineData("cacheMedium", "tape")]
    [InlineData("prefetch", "a/../b")]
    public void Parameters_Invalid_NameTheParameter(string key, string value)
    {
        DatasetException e = Assert.Throws<DatasetException>(() => DatasetParameters.Parse(new Dictionary<string, string> { [key] = value }));
        Assert.Equal(DatasetErrorKind.InvalidSource, e.Kind);
        Assert.Contains(key, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parameters_Defaults_AndKnownValues()
    {
        DatasetParameters d = DatasetParameters.Parse(new Dictionary<string, string> { ["unrelated"] = "x" });
        Assert.Equal(CacheMediumChoice.Disk, d.CacheMedium);
        Assert.Equal(PrefetchMode.None, d.Prefetch);
        Assert.Null(d.Refresh);

        DatasetParameters m = DatasetParameters.Parse(new Dictionary<string, string> { ["cacheMedium"] = "Memory", ["prefetch"] = "metadata" });
        Assert.Equal(CacheMediumChoice.Memory, m.CacheMedium);
        Assert.Equal(PrefetchMode.Metadata, m.Prefetch);

        DatasetParameters g = DatasetParameters.Parse(new Dictionary<string, string> { ["prefetch"] = "train/*.tar, **/*.json" });
        Assert.Equal(PrefetchMode.Globs, g.Prefetch);
        Assert.Equal(["train/*.tar", "**/*.json"], g.PrefetchGlobs);
    }

    [Theory]
    [InlineData("*.json", "a.json", true)]
    [InlineData("*.json", "dir/a.json", false)]
    [InlineData("**/*.json", "a.json", true)]
    [InlineData("**/*.json", "x/y/a.json", true)]
    [InlineData("train/*.tar", "train/shard-0001.tar", true)]
    [InlineData("train/*.tar", "val/shard-0001.tar", false)]
    [InlineData("train/**", "train/a/b/c", true)]
    [InlineData("shard-????.tar", "shard-0001.tar", true)]
    [InlineData("shard-????.tar", "shard-01.tar", false)]
    [InlineData("a*b*c", "aXXbYYc", true)]
    [InlineData("a*b*c", "aXXbYY", false)]
    public void Glob_Matches(string pattern, string path, bool expected) =>
        Assert.Equal(expected, Glob.IsMatch(pattern, path));

    [Fact]
    public void ReadAhead_SequentialReadsOpenAGrowingWindow_RandomReadsDoNot()
    {
        const int chunk = 4 << 20;
        const int read = 1 << 20;
        var window = new ReadAheadWindow();
        Assert.Equal(default, window.OnRead(0, read, chunk, 100, 8));            // first read: no history
        Assert.Equal(default, window.OnRead(read, read, chunk, 100, 8));        // in sequence, but the run is short
        Assert.Equal(default, window.OnRead(2 * read, read, chunk, 100, 8));
        Assert.Equal((1L, 3L), window.OnRead(3 * read, read, chunk, 100, 8));   // a chunk's worth: 2 ahead
        Assert.Equal((3L, 6L), window.OnRead(4 * read, read, chunk, 100, 8));   // window 4 from chunk 1, only new chunks
        Assert.Equal((6L, 10L), window.OnRead(5 * read, read, chunk, 100, 8));  // window 8
        Assert.Equal(default, window.OnRead(6 * read, read, chunk, 100, 8));    // nothing new within chunk 1
        Assert.Equal((10L, 11L), window.OnRead(8 * read, read, chunk, 100, 8)); // into chunk 2: the window slides one chunk
        Assert.Equal(default, window.OnRead(90L * chunk, read, chunk, 100, 8)); // a jump resets
        for (int i = 1; i < 3; i++)
        {
            Assert.Equal(default, window.OnRead((90L * chunk) + (i * read), read, chunk, 100, 8));
        }
        Assert.Equal((91L, 93L), window.OnRead((90L * chunk) + (3 * read), read, chunk, 100, 8));
        Assert.Equal((93L, 96L), window.OnRead((90L * chunk) + (4 * read), read, chunk, 100, 8)); // window 4 from chunk 91
        Assert.Equal((96L, 99L), window.OnRead((90L * chunk) + (5 * read), read, chunk, 99, 8));  // window 8, capped at the last chunk
    }

    [Fact]
    public void ReadAhead_OneRandomPreadSplitIntoReads_FetchesNothingAhead()
    {
        // What the kernel sends for a 1 MiB pread at a random offset: a small READ, then the rest
        // in back-to-back READs, then its own read-ahead of read_ahead_kb (1 MiB) beyond.
        const int chunk = 4 << 20;
        var window = new ReadAheadWindow();
        var random = new Random(3);
        // Shuffled slots 16 MiB apart: no two reads land within the window's slack of each other.
        foreach (int slot in Enumerable.Range(0, 50).OrderBy(_ => random.Next()))
        {
            long offset = (slot * (16L << 20)) + random.NextInt64(0, 4L << 20);
            Assert.Equal(default, window.OnRead(offset, 128 << 10, chunk, 200, 8));
            long at = offset + (128 << 10);
            foreach (int size in new[] { 256 << 10, 256 << 10, 384 << 10, 1 << 20 })
            {
                Assert.Equal(default, window.OnRead(at, size, chunk, 200, 8));
                at += size;
            }
        }
    }
}
