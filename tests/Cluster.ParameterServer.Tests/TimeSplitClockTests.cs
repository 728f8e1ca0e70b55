using Cluster.Wire;
using Cluster.Worker;

namespace Cluster.ParameterServer.Tests;

/// <summary>A worker's time split over the whole run and over its timed second half.</summary>
public sealed class TimeSplitClockTests
{
    [Fact]
    public void TheSteadySplitCountsFromTheMarkOnly()
    {
        var clock = new TimeSplitClock();
        clock.Add(10, 1, 2, 3, 64);
        Assert.Equal(0, clock.SteadySnapshot().Steps);

        clock.MarkSteadyStart();
        clock.Add(20, 4, 5, 6, 32);
        clock.MarkSteadyStart();
        clock.Add(30, 7, 8, 9, 32);

        var steady = clock.SteadySnapshot();
        Assert.Equal((50.0, 11.0, 13.0, 15.0, 2L, 64L), (steady.ComputeMs, steady.PushMs, steady.PullMs, steady.WaitMs, steady.Steps, steady.Samples));
        var whole = clock.Snapshot();
        Assert.Equal((60.0, 3L), (whole.ComputeMs, whole.Steps));
    }

    [Fact]
    public void TheSteadyHalfStartsHalfwayThroughTheWorkersOwnShareOfSteps()
    {
        // 8 workers of batch 64 over 512,000 samples: 1,000 steps each.
        Assert.Equal(500, TrainingWorker.SteadyFromStep(new TrainingSettings { Mode = "sync", Batch = 64, TotalSamples = 512_000 }, workerCount: 8));
        // 4 asynchronous workers share 1,000 pushes of 64.
        Assert.Equal(125, TrainingWorker.SteadyFromStep(new TrainingSettings { Mode = "async", Batch = 64, TotalSamples = 64_000 }, workerCount: 4));
        Assert.Equal(1, TrainingWorker.SteadyFromStep(new TrainingSettings { Mode = "sync", Batch = 64, TotalSamples = 64 }, workerCount: 1));
    }
}
