using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Tests;
using Cluster.Training;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.ParameterServer.Tests;

/// <summary>A server given <c>--init FILE</c> publishes the checkpoint's weights as version 0, which every worker pulls first.</summary>
public sealed class InitialWeightsTests
{
    [Fact]
    public void VersionZeroIsTheCheckpointsWeights()
    {
        using var scratch = new ScratchDirectory();
        var saved = new Sequential(ModelPresets.Resolve("mlp"));
        saved.Initialize(42);
        string path = scratch.File("start.safetensors");
        Checkpoint.Save(path, saved);

        var options = new ServerOptions { Training = new TrainingOptions { Model = "mlp", Data = "embedded", Seed = 1, Init = path }, Workers = 1, Mode = "sync" };
        using var run = new TrainingCoordinator(options, FashionMnist.LoadEmbedded(), NullLogger.Instance);

        var weights = new float[run.Store.Size];
        run.Store.CopyWeights(weights);
        Assert.Equal(0, run.Store.Version);
        Assert.Equal(saved.Parameters, weights);
    }

    [Fact]
    public void AResumedServerStartsAfterTheCheckpointsEpochWithItsOptimizerState()
    {
        using var scratch = new ScratchDirectory();
        var data = FashionMnist.LoadEmbedded();
        var saved = new Sequential(ModelPresets.Resolve("mlp"));
        saved.Initialize(42);
        var adam = Optimizer.Create(new TrainingOptions().OptimizerOptions, saved.NamedParameters);
        var gradient = Enumerable.Range(0, saved.ParameterCount).Select(i => (i % 7 - 3) * 0.01f).ToArray();
        adam.Step(saved.Parameters, gradient);
        adam.Step(saved.Parameters, gradient);
        string path = scratch.File("run.safetensors");
        Checkpoint.Save(path, saved, NormalizationMetadata.ForRun(2, 0.8, 1, data.Normalization), adam.CaptureState());

        var options = new ServerOptions { Training = new TrainingOptions { Model = "mlp", Data = "embedded", Epochs = 5, Resume = path, Schedule = "step:1:0.5" }, Workers = 2, Mode = "sync" };
        using var run = new TrainingCoordinator(options, data, NullLogger.Instance);

        var weights = new float[run.Store.Size];
        run.Store.CopyWeights(weights);
        Assert.Equal(saved.Parameters, weights);
        Assert.Equal(2, run.StartEpoch);
        Assert.Equal(2, run.Store.Optimizer.StepCount);
        // The store's version counts from 0 again; the status says where the run's global step starts.
        var status = StatusBuilder.Build(run);
        Assert.Equal(0, status.Version);
        Assert.Equal(2, status.StartStep);
        Assert.Equal(adam.CaptureState().Buffers["exp_avg"], run.Store.Optimizer.CaptureState().Buffers["exp_avg"]);
        // Three epochs left, at the third epoch's learning rate.
        Assert.Equal(3L * data.Train.Count, run.TotalSamples);
        Assert.Equal(0.001f * 0.25f, run.Store.Optimizer.LearningRate, 1e-9f);
    }

    [Fact]
    public void AResumedEarlyStoppingServerGoesOnFromTheBestWeightsItsCheckpointKept()
    {
        using var scratch = new ScratchDirectory();
        var data = FashionMnist.LoadEmbedded();
        var saved = new Sequential(ModelPresets.Resolve("mlp"));
        saved.Initialize(42);
        var best = new Sequential(ModelPresets.Resolve("mlp"));
        best.Initialize(43);
        var adam = Optimizer.Create(new TrainingOptions().OptimizerOptions, saved.NamedParameters);
        string path = scratch.File("run.safetensors");
        Checkpoint.Save(path, saved, NormalizationMetadata.ForRun(3, 0.8, 1, data.Normalization), adam.CaptureState(), new BestWeights(2, 0.83, best.Parameters.ToArray()));

        var options = new ServerOptions { Training = new TrainingOptions { Model = "mlp", Data = "embedded", Epochs = 9, Resume = path, Patience = 2 }, Workers = 1, Mode = "sync" };
        using var run = new TrainingCoordinator(options, data, NullLogger.Instance);

        // The weights go on from epoch 3; epoch 2's are the best to beat, and the run kept them.
        var weights = new float[run.Store.Size];
        run.Store.CopyWeights(weights);
        Assert.Equal(saved.Parameters, weights);
        Assert.Equal(2, run.BestEpoch);
        Assert.Equal(2, StatusBuilder.Build(run).BestEpoch);
    }
}
