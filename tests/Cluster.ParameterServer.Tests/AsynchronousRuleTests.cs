using Cluster.Optim;
using Cluster.Training;
using Xunit.Abstractions;

namespace Cluster.ParameterServer.Tests;

/// <summary>Asynchronous and bounded-staleness training on real data, with concurrent workers.</summary>
[Collection(nameof(TimingSensitive))]
public sealed class AsynchronousRuleTests(ITestOutputHelper output)
{
    private static readonly OptimizerOptions Adam = new() { Name = "adam", LearningRate = 1e-3f };

    [Theory]
    [InlineData("async", 3, 8)]
    [InlineData("ssp:2", 4, 8)]
    public async Task TrainsTheEmbeddedSubsetToEightyPercent(string mode, int workers, int epochs)
    {
        // NOTE: a smaller step than the single-process default: stale gradients overshoot at 1e-3.
        // At 5e-4 for 5 epochs the last weights scored 79.7–85 % from run to run (the arrival
        // order is the machine's); at 3e-4 for 8 epochs, 84.5–86.4 % in ten runs.
        var cluster = new InProcessCluster("mlp", mode, workers, 0, Adam with { LearningRate = 3e-4f });
        long total = epochs * (long)InProcessCluster.Data.Train.Count;

        await cluster.RunAsync(total, InProcessCluster.RealCompute, TimeSpan.FromSeconds(120));

        var model = new Models.Sequential(cluster.Spec);
        cluster.Weights().CopyTo(model.Parameters, 0);
        var test = Trainer.Evaluate(model, InProcessCluster.Data.Test);
        var histogram = cluster.Recorder.StalenessHistogram();
        output.WriteLine($"{mode}, {workers} workers: test accuracy {test.Accuracy:P2}, {cluster.Store.Version} updates, staleness histogram [{string.Join(", ", histogram)}]");
        Assert.True(test.Accuracy >= 0.80, $"test accuracy {test.Accuracy:P2} is below 80%");
        Assert.Equal(cluster.Store.Version, histogram.Sum());
    }

    [Fact]
    public async Task SspTwoNeverAppliesAGradientStalerThanTwo()
    {
        var histogram = await StalenessWithAStragglerAsync("ssp:2");
        Assert.True(histogram.Length <= 3, $"a gradient {histogram.Length - 1} versions stale was applied");
        Assert.True(histogram.Length == 3 && histogram[2] > 0, "the bound should be reached, not just respected trivially");
    }

    [Fact]
    public async Task AsyncRecordsStalenessBeyondTheSspBound()
    {
        var histogram = await StalenessWithAStragglerAsync("async");
        Assert.True(histogram.Length > 3, "a slow worker under async should see staleness above 2");
        // The straggler is the worker whose gradients are stale: its mean staleness stands out.
        var recorder = _last!.Recorder;
        output.WriteLine(string.Join(", ", Enumerable.Range(0, 5).Select(w => $"worker {w}: {recorder.MeanStaleness(w):F2}")));
        Assert.All(Enumerable.Range(1, 4), w => Assert.True(recorder.MeanStaleness(0) > 2 * recorder.MeanStaleness(w), $"worker 0: {recorder.MeanStaleness(0):F2}, worker {w}: {recorder.MeanStaleness(w):F2}"));
    }

    private InProcessCluster? _last;

    /// <summary>Five workers without real compute, worker 0 a straggler that makes staleness want to grow.</summary>
    private async Task<long[]> StalenessWithAStragglerAsync(string mode)
    {
        var cluster = _last = new InProcessCluster("mlp", mode, 5, 0, Adam);
        await cluster.RunAsync(64 * 1500, (worker, model, trainer, batches) =>
        {
            if (worker == 0)
            {
                Thread.Sleep(15);
            }
            return (0.5f, 64);
        }, TimeSpan.FromSeconds(60));
        var histogram = cluster.Recorder.StalenessHistogram();
        output.WriteLine($"{mode} with a straggler: staleness histogram [{string.Join(", ", histogram)}]");
        return histogram;
    }
}
