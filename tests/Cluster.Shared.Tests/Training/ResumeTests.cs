using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Models;
using Cluster.Tests.Checkpoints;
using Cluster.Training;

namespace Cluster.Tests.Training;

/// <summary>
/// <c>--resume FILE</c>: a run stopped after an epoch and resumed from its checkpoint ends with the
/// weights of the run that never stopped, and a checkpoint that cannot be resumed is refused before
/// anything starts.
/// </summary>
public sealed class ResumeTests : IDisposable
{
    // Dropout, so that the masks must continue as they would have; a step schedule, so that the
    // learning rate must too; momentum, so that the optimizer's state must.
    private const string DropoutModel = """
        input 1 28 28
        flatten
        dense 64
        relu
        dropout 0.25
        dense 10
        """;

    private static readonly Lazy<FashionMnist> Data = new(() => FashionMnist.LoadEmbedded());
    private readonly ScratchDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void ARunResumedAfterAnEpochEndsWithTheWeightsOfOneNeverStopped()
    {
        string spec = _directory.File("dropout.txt");
        File.WriteAllText(spec, DropoutModel);
        var options = new TrainingOptions
        {
            Model = spec, Data = "embedded", Epochs = 3, Optimizer = "momentum", Schedule = "step:1:0.5", Threads = 1, Seed = 4,
        };

        string straightMetrics = _directory.File("straight.jsonl");
        var straight = Train(options with { Save = _directory.File("straight.safetensors"), Metrics = straightMetrics });
        string resumable = _directory.File("resumable.safetensors");
        string metrics = _directory.File("resumed.jsonl");
        var first = Train(options with { Epochs = 1, Save = resumable, Metrics = metrics });
        Assert.Equal(1, first.SavedEpoch);
        var resumed = Train(options with { Resume = resumable, Save = resumable, Metrics = metrics });

        Assert.Equal(1, resumed.ResumedAfterEpoch);
        Assert.Equal(3, resumed.SavedEpoch);
        Assert.NotEqual(CheckpointModels.Bits(first.Model.Parameters), CheckpointModels.Bits(resumed.Model.Parameters));
        Assert.Equal(CheckpointModels.Bits(straight.Model.Parameters), CheckpointModels.Bits(resumed.Model.Parameters));
        Assert.Equal(File.ReadAllBytes(_directory.File("straight.safetensors")), File.ReadAllBytes(resumable));
        // The metrics file goes on too: every epoch once, with the accuracies of the run never stopped.
        Assert.Equal(Accuracies(straightMetrics), Accuracies(metrics));
        Assert.Equal([1, 2, 3], Accuracies(metrics).Select(a => a.Epoch));
    }

    [Fact]
    public void ACheckpointThatCannotBeResumedIsRefusedInOneLine()
    {
        var model = new Sequential(ModelPresets.Resolve("mlp"));
        model.Initialize(1);
        string alone = _directory.File("alone.safetensors");
        Checkpoint.Save(alone, model, NormalizationMetadata.ForRun(2, 0.8, 1, Data.Value.Normalization));
        string adam = _directory.File("adam.safetensors");
        var state = Cluster.Optim.Optimizer.Create(new TrainingOptions().OptimizerOptions, model.NamedParameters).CaptureState();
        Checkpoint.Save(adam, model, NormalizationMetadata.ForRun(2, 0.8, 1, Data.Value.Normalization), state);

        AssertRefused(new() { Model = "mlp", Resume = alone, Epochs = 3 }, "holds no optimizer state", "--init");
        AssertRefused(new() { Model = "mlp", Resume = adam, Epochs = 3, Optimizer = "momentum" }, "holds adam's state", "--optimizer adam");
        AssertRefused(new() { Model = "mlp", Resume = adam, Epochs = 2 }, "at epoch 2 already", "--epochs above 2");
        AssertRefused(new() { Model = "lenet", Resume = adam, Epochs = 3 }, "unknown tensor", "1.weight");
        AssertRefused(new() { Model = "mlp", Resume = adam, Init = adam, Epochs = 3 }, "--init and --resume are both given");
        AssertRefused(new() { Model = "mlp", Resume = _directory.File("none.safetensors"), Epochs = 3 }, "does not exist");
        Assert.Equal("mlp", new TrainingOptions { Model = "mlp", Resume = adam, Epochs = 3 }.Validate().Name);
        // A checkpoint written without early stopping holds no best weights: early stopping then counts from the resumed epoch.
        Assert.Equal("mlp", new TrainingOptions { Model = "mlp", Resume = adam, Epochs = 3, Patience = 2 }.Validate().Name);
    }

    [Fact]
    public void AnEarlyStoppingRunStoppedAndResumedStopsWhereTheOneNeverStoppedDidWithTheSameWeights()
    {
        var options = new TrainingOptions { Model = "mlp", Data = "embedded", Epochs = 40, LearningRate = 0.003f, Patience = 2, Threads = 1, Seed = 4 };
        string kept = _directory.File("straight.safetensors");
        string straightMetrics = _directory.File("straight.jsonl");
        var straight = Train(options with { Save = kept, Metrics = straightMetrics });
        Assert.True(straight.StoppedEarly, "validation accuracy of mlp on the subset stalls well before 40 epochs");
        int best = straight.BestEpoch!.Value;

        // Stopped (as by Ctrl+C) one epoch after the best: the checkpoint is that epoch's, the best weights inside it.
        string resumable = _directory.File("resumable.safetensors");
        string metrics = _directory.File("resumed.jsonl");
        using var stop = new CancellationTokenSource();
        var first = new TrainingRun(options with { Save = resumable, Metrics = metrics }, options.Validate(), Data.Value);
        first.Run(new StopAfter(best + 1, stop), stop.Token);
        Assert.Equal(best + 1, first.SavedEpoch);
        Assert.Null(first.BestEpoch);
        var model = Checkpoint.Load(resumable).Model;
        Assert.Equal(best, Checkpoint.LoadBest(resumable, model)?.Epoch);
        Assert.NotNull(Checkpoint.LoadOptimizerState(resumable, model));

        var resumed = Train(options with { Resume = resumable, Save = resumable, Metrics = metrics });
        Assert.True(resumed.StoppedEarly);
        Assert.Equal(best, resumed.BestEpoch);
        // The best epoch's weights, as the run never stopped kept them, byte for byte; the same epochs in the metrics.
        Assert.Equal(File.ReadAllBytes(kept), File.ReadAllBytes(resumable));
        Assert.Equal(Accuracies(straightMetrics), Accuracies(metrics));
    }

    [Fact]
    public void EachEpochAndEachShardDrawsItsOwnDropoutMasks()
    {
        var model = new Sequential(ModelSpec.Parse(DropoutModel));
        model.Initialize(1);
        model.Allocate(4);
        var input = CheckpointModels.RandomBatch(model, 4, seed: 2);
        int[] Masked(int epoch, int shard)
        {
            model.SeedEpoch(7, epoch, shard);
            return CheckpointModels.Bits(model.Forward(input, training: true).Span);
        }

        Assert.Equal(Masked(1, 0), Masked(1, 0));
        Assert.NotEqual(Masked(1, 0), Masked(2, 0));
        Assert.NotEqual(Masked(1, 0), Masked(1, 1));
    }

    private static (int Epoch, double Accuracy)[] Accuracies(string metrics) =>
        [.. File.ReadAllLines(metrics).Select(line =>
        {
            using var json = System.Text.Json.JsonDocument.Parse(line);
            return (json.RootElement.GetProperty("epoch").GetInt32(), json.RootElement.GetProperty("test_accuracy").GetDouble());
        })];

    private static TrainingRun Train(TrainingOptions options)
    {
        var run = new TrainingRun(options, options.Validate(), Data.Value);
        run.Run(new Silent());
        return run;
    }

    private static void AssertRefused(TrainingOptions options, params string[] parts)
    {
        var e = Assert.Throws<InvalidOptionException>(() => options.Validate());
        foreach (string part in parts)
        {
            Assert.Contains(part, e.Message);
        }
        Assert.DoesNotContain('\n', e.Message);
    }

    /// <summary>Cancels the run once <paramref name="epoch"/> is done, as Ctrl+C would between epochs.</summary>
    private sealed class StopAfter(int epoch, CancellationTokenSource stop) : ITrainingObserver
    {
        public void EpochStarted(int epoch, int batches)
        {
        }

        public void BatchDone(int epoch, int batch, float loss, double imagesPerSec)
        {
        }

        public void Evaluating(int epoch)
        {
        }

        public void EpochDone(EpochResult result)
        {
            if (result.Epoch == epoch)
            {
                stop.Cancel();
            }
        }
    }

    private sealed class Silent : ITrainingObserver
    {
        public void EpochStarted(int epoch, int batches)
        {
        }

        public void BatchDone(int epoch, int batch, float loss, double imagesPerSec)
        {
        }

        public void Evaluating(int epoch)
        {
        }

        public void EpochDone(EpochResult result)
        {
        }
    }
}
