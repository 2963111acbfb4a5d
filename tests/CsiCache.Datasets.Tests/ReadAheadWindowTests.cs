namespace CsiCache.Datasets.Tests;

/// <summary>Sequential-run detection: what starts read-ahead and whole-chunk fetches, and what does not.</summary>
public sealed class ReadAheadWindowTests
{
    private const int MiB = 1 << 20;
    private const int Chunk = 4 * MiB;

    [Fact]
    public void SequentialReads_StartARunAfterFourMiB_AndFetchTheNextChunksAhead()
    {
        var window = new ReadAheadWindow();
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(default, window.OnRead(i * (long)MiB, MiB, Chunk, 16, 8));
            Assert.False(window.InSequentialRun);
        }
        (long from, long to) = window.OnRead(3L * MiB, MiB, Chunk, 16, 8);
        Assert.True(window.InSequentialRun);
        Assert.Equal((1L, 3L), (from, to));
    }

    [Fact]
    public void RandomReadsASlackApart_AreNoRun_ThoughTheyCoverFourMiB()
    {
        // Each read starts within the out-of-order slack of the last one's end, so each counts
        // as "in sequence"; but 1 MiB read per 3 MiB jumped is a random reader, not a run.
        var window = new ReadAheadWindow();
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(default, window.OnRead(i * 4L * MiB, MiB, Chunk, 16, 8));
            Assert.False(window.InSequentialRun, $"read {i}");
        }
    }

    [Fact]
    public void AJumpAway_EndsTheRun()
    {
        var window = new ReadAheadWindow();
        for (int i = 0; i < 5; i++)
        {
            window.OnRead(i * (long)MiB, MiB, Chunk, 16, 8);
        }
        Assert.True(window.InSequentialRun);
        window.OnRead(40L * MiB, MiB, Chunk, 64, 8);
        Assert.False(window.InSequentialRun);
    }

    [Fact]
    public void ReadAheadOff_StillDetectsTheRun_ButFetchesNothingAhead()
    {
        var window = new ReadAheadWindow();
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(default, window.OnRead(i * (long)MiB, MiB, Chunk, 16, maxWindow: 0));
        }
        Assert.True(window.InSequentialRun);
    }
}
