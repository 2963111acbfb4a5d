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

    [Fact]
    public void AReaderFromZero_NeverLooksRandom_HoweverItsReadsAreCut()
    {
        var window = new ReadAheadWindow();
        long offset = 0;
        for (int i = 0; i < 6; i++)
        {
            int length = MiB - 16; // an unaligned buffer: every direct READ is a little short
            window.OnRead(offset, length, Chunk, 16, 8, out bool random);
            Assert.False(random, $"read {i} at {offset}");
            offset += length;
        }
    }

    [Fact]
    public void AJump_AndTheReadsRightAfterIt_LookRandom_UntilTheyMakeARun()
    {
        var window = new ReadAheadWindow();
        window.OnRead(0, MiB, Chunk, 64, 8, out bool random);
        Assert.False(random);
        window.OnRead(40L * MiB, MiB, Chunk, 64, 8, out random);
        Assert.True(random, "a jump");
        // The kernel's READ for the rest of that pread, in order: still the random read's.
        window.OnRead(41L * MiB, 4096, Chunk, 64, 8, out random);
        Assert.True(random, "the tail of a random pread");
        // A reader that goes on in order from there makes a run, and stops looking random.
        for (int i = 0; i < 4; i++)
        {
            window.OnRead((41L * MiB) + 4096 + (i * (long)MiB), MiB, Chunk, 64, 8, out random);
        }
        Assert.False(random);
        Assert.True(window.InSequentialRun);
    }

    [Fact]
    public void AFirstReadAwayFromZero_LooksRandom()
    {
        var window = new ReadAheadWindow();
        window.OnRead(7L * MiB, MiB, Chunk, 64, 8, out bool random);
        Assert.True(random);
    }
}
