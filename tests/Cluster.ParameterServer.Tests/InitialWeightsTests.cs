using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Models;
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
}
