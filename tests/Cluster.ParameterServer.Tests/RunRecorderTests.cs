namespace Cluster.ParameterServer.Tests;

/// <summary>The steady step time that throughput is reported from.</summary>
public sealed class RunRecorderTests
{
    [Fact]
    public void SteadyMeanLeavesOutTheFirstHalfOfTheSteps()
    {
        // A warm-up of slow steps, then steady ones: only the steady half counts.
        Assert.Equal(10.0, RunRecorder.SteadyMean([90, 50, 30, 10, 10, 10]), 12);
        // An odd count keeps the middle step.
        Assert.Equal(20.0, RunRecorder.SteadyMean([90, 50, 30, 20, 10]), 12);
        Assert.Equal(7.0, RunRecorder.SteadyMean([7]), 12);
        Assert.Equal(0.0, RunRecorder.SteadyMean([]));
    }

    [Fact]
    public void SteadyStepTimeOfARunComesFromItsSecondHalf()
    {
        var recorder = new RunRecorder();
        recorder.RecordApplied(1, 0f, []);
        Thread.Sleep(200);
        recorder.RecordApplied(1, 0f, []);
        for (int i = 0; i < 3; i++)
        {
            recorder.RecordApplied(1, 0f, []);
        }
        // Steps of ≥ 200, ~0, ~0, ~0 ms: the second half holds only the fast ones.
        Assert.True(recorder.SteadyStepMs < 100, $"steady step {recorder.SteadyStepMs} ms");
        Assert.True(recorder.MeanStepMs >= 50, $"mean step {recorder.MeanStepMs} ms");
    }

    [Fact]
    public void TheStepSeriesAveragesBucketsOfStepsWhenThereAreMoreThanItsPoints()
    {
        var recorder = new RunRecorder();
        for (int i = 0; i < 6; i++)
        {
            recorder.RecordApplied(1, 0f, []);
            Thread.Sleep(i % 2 * 20);
        }
        // Five steps: as they are with room for them, in buckets of two (the last shorter) with three points.
        var steps = recorder.StepSeries(10, out int bucket);
        Assert.Equal(5, steps.Length);
        Assert.Equal(1, bucket);
        var series = recorder.StepSeries(3, out bucket);
        Assert.Equal(2, bucket);
        Assert.Equal([(steps[0] + steps[1]) / 2, (steps[2] + steps[3]) / 2, steps[4]], series, (a, b) => Math.Abs(a - b) < 1e-4f);
        Assert.Empty(new RunRecorder().StepSeries(10, out _));
    }
}
