using Cluster.Optim;
using Xunit.Abstractions;

namespace Cluster.ParameterServer.Tests;

/// <summary>Backup workers (Chen et al. 2016): a straggler does not set the pace of sync SGD.</summary>
[Collection(nameof(TimingSensitive))]
public sealed class BackupWorkerTests(ITestOutputHelper output)
{
    private const int SlowMs = 60;
    private static readonly OptimizerOptions Sgd = new() { Name = "sgd", LearningRate = 1e-3f };

    private static (float, int) Emulated(int worker, Models.Sequential model, Training.Trainer trainer, Data.BatchIterator batches)
    {
        // Worker 2 is the straggler.
        Thread.Sleep(worker == 2 ? SlowMs : 2);
        return (0.5f, 64);
    }

    [Fact]
    public async Task WithABackupWorkerSyncStepsAtTheSpeedOfTheOthers()
    {
        // NOTE: steady steps only (the second half): the first include loading the data and building each worker's model.
        var withBackup = new InProcessCluster("mlp", "sync", 2, 1, Sgd);
        await withBackup.RunAsync(40 * 128, Emulated, TimeSpan.FromSeconds(60));
        double backupStepMs = withBackup.Recorder.SteadyStepMs;

        var without = new InProcessCluster("mlp", "sync", 3, 0, Sgd);
        await without.RunAsync(10 * 192, Emulated, TimeSpan.FromSeconds(60));
        double plainStepMs = without.Recorder.SteadyStepMs;

        output.WriteLine($"straggler {SlowMs} ms/step: sync 2+1 backup {backupStepMs:F1} ms/step ({withBackup.Recorder.DroppedLate} late gradients dropped); sync 3 workers {plainStepMs:F1} ms/step");
        Assert.True(plainStepMs >= SlowMs * 0.9, "without a backup every step waits for the straggler");
        Assert.True(backupStepMs < SlowMs / 2.0, $"with a backup worker a step took {backupStepMs:F1} ms; the straggler takes {SlowMs} ms");
        Assert.True(withBackup.Recorder.DroppedLate > 0, "the straggler's late gradients are dropped and counted");
    }

    [Fact]
    public async Task WithoutOneTheStragglerIsNamed()
    {
        var cluster = new InProcessCluster("mlp", "sync", 3, 0, Sgd);
        await cluster.RunAsync((StragglerWatch.Window + 8) * 192, Emulated, TimeSpan.FromSeconds(60));

        output.WriteLine(string.Join(", ", Enumerable.Range(0, 3).Select(w => $"worker {w}: {cluster.Recorder.MeanLatenessMs(w):F1} ms late")));
        Assert.True(cluster.Recorder.IsStraggler(2), $"worker 2 comes {cluster.Recorder.MeanLatenessMs(2):F1} ms after each step's first");
        Assert.False(cluster.Recorder.IsStraggler(0));
        Assert.False(cluster.Recorder.IsStraggler(1));
        Assert.True(cluster.Recorder.MeanLatenessMs(2) >= 0.8 * (SlowMs - 2));
    }
}
