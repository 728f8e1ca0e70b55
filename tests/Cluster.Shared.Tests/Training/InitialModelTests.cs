using Cluster.Checkpoints;
using Cluster.Models;
using Cluster.Training;

namespace Cluster.Tests.Training;

/// <summary><c>--init FILE</c>: a run starts from a checkpoint's weights and batch norm statistics, and a file that does not fit fails before anything starts.</summary>
public sealed class InitialModelTests : IDisposable
{
    private readonly ScratchDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void ARunStartsFromTheCheckpointsWeightsAndStatisticsNotTheSeeds()
    {
        // resnet has batch norm: its running statistics travel with the weights.
        var saved = new Sequential(ModelPresets.Resolve("resnet"));
        saved.Initialize(7);
        for (int i = 0; i < saved.State.Length; i++)
        {
            saved.State[i] = 0.5f + i % 3;
        }
        string path = _directory.File("start.safetensors");
        Checkpoint.Save(path, saved);

        var options = new TrainingOptions { Model = "resnet", Seed = 1, Init = path };
        var spec = options.Validate();
        var model = options.InitialModel(spec);

        Assert.Equal(saved.Parameters, model.Parameters);
        Assert.Equal(saved.State, model.State);
        var fromSeed = new TrainingOptions { Model = "resnet", Seed = 1 }.InitialModel(spec);
        Assert.NotEqual(saved.Parameters, fromSeed.Parameters);
    }

    [Fact]
    public void ACheckpointOfAnotherModelIsRefusedNamingTheTensor()
    {
        var mlp = new Sequential(ModelPresets.Resolve("mlp"));
        mlp.Initialize(1);
        string path = _directory.File("mlp.safetensors");
        Checkpoint.Save(path, mlp);

        var e = Assert.Throws<InvalidOptionException>(() => new TrainingOptions { Model = "lenet", Init = path }.Validate());
        Assert.StartsWith("--init: ", e.Message);
        Assert.Contains("1.weight", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AMissingCheckpointIsRefusedBeforeTheRunStarts()
    {
        string path = _directory.File("none.safetensors");
        var e = Assert.Throws<InvalidOptionException>(() => new TrainingOptions { Model = "mlp", Init = path }.Validate());
        Assert.Contains(path, e.Message);
    }
}
