namespace Cluster.ParameterServer.Tests;

/// <summary>A straggler is named once it keeps the others waiting, and not for the jitter of who comes last.</summary>
public sealed class StragglerWatchTests
{
    [Fact]
    public void AWorkerThatKeepsComingLateIsAStragglerOnceTheWindowIsFull()
    {
        var watch = new StragglerWatch();
        // Steps of 30 ms; worker 2 comes 12 ms after the first every time, workers 0 and 1 within 1 ms.
        for (int step = 0; step < StragglerWatch.Window; step++)
        {
            Assert.False(watch.IsStraggler(2));
            watch.Arrived(step % 2, 0);
            watch.Arrived(1 - step % 2, 1);
            watch.Arrived(2, 12);
            watch.Stepped(30);
        }
        Assert.True(watch.IsStraggler(2));
        Assert.False(watch.IsStraggler(0));
        Assert.False(watch.IsStraggler(1));
        Assert.Equal(12, watch.MeanLatenessMs(2), 9);
        Assert.Equal(0.5, watch.MeanLatenessMs(0), 9);
    }

    [Fact]
    public void TakingTurnsAtComingLastIsNotStraggling()
    {
        var watch = new StragglerWatch();
        var random = new Random(3);
        for (int step = 0; step < 10 * StragglerWatch.Window; step++)
        {
            // Each step one of the four is first, the others 0–8 ms after it: ordinary jitter.
            int first = random.Next(4);
            for (int w = 0; w < 4; w++)
            {
                watch.Arrived(w, w == first ? 0 : random.NextDouble() * 8);
            }
            watch.Stepped(30);
        }
        Assert.All(Enumerable.Range(0, 4), w => Assert.False(watch.IsStraggler(w), $"worker {w}: {watch.MeanLatenessMs(w):F1} ms"));
    }

    [Fact]
    public void LatenessSmallAgainstTheStepIsNotStraggling()
    {
        var watch = new StragglerWatch();
        for (int step = 0; step < 2 * StragglerWatch.Window; step++)
        {
            // Always last, but by 3 ms of a 100 ms step: nobody waits much.
            watch.Arrived(0, 0);
            watch.Arrived(1, 3);
            watch.Stepped(100);
        }
        Assert.False(watch.IsStraggler(1));
    }

    [Fact]
    public void AStragglerThatSpeedsUpIsNoLongerOneAndOneThatLeftIsNone()
    {
        var watch = new StragglerWatch();
        for (int step = 0; step < StragglerWatch.Window; step++)
        {
            watch.Arrived(0, 0);
            watch.Arrived(1, 20);
            watch.Stepped(40);
        }
        Assert.True(watch.IsStraggler(1));
        var left = new StragglerWatch();
        for (int step = 0; step < StragglerWatch.Window; step++)
        {
            left.Arrived(0, 0);
            left.Arrived(1, 0.5);
            left.Arrived(2, 20);
            left.Stepped(40);
        }
        left.Departed(2);
        Assert.False(left.IsStraggler(2));
        Assert.Equal(20, left.MeanLatenessMs(2), 9);

        for (int step = 0; step < 2 * StragglerWatch.Window; step++)
        {
            watch.Arrived(1, 0);
            watch.Arrived(0, 1);
            watch.Stepped(25);
        }
        Assert.False(watch.IsStraggler(1));
        Assert.False(watch.IsStraggler(0));
    }
}
