using BenchmarkDotNet.Attributes;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Tensors;
using Cluster.Training;

namespace Cluster.Benchmarks;

/// <summary>
/// One training step (zero gradients, forward, loss, backward, SGD-momentum update) of a preset at
/// batch 64, the measure libtorch's reference figure uses.
/// </summary>
[Config(typeof(BenchConfig))]
public class TrainingStepBenchmarks
{
    private Trainer? _trainer;
    private ThreadTeam _team = ThreadTeam.Single;

    /// <summary>The preset trained.</summary>
    [Params("lenet", "resnet", "lstm", "gru")]
    public string Model { get; set; } = "lenet";

    /// <summary>Compute threads.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    /// <summary>Samples per step.</summary>
    public const int Batch = 64;

    [GlobalSetup]
    public void Setup()
    {
        _team = Threads == 1 ? ThreadTeam.Single : new ThreadTeam(Threads);
        _trainer = CreateTrainer(Model, _team);
    }

    /// <summary>A trainer of <paramref name="preset"/> at batch 64 with a random batch loaded.</summary>
    public static Trainer CreateTrainer(string preset, ThreadTeam team)
    {
        var model = new Sequential(ModelPresets.Resolve(preset)) { Team = team };
        model.Initialize(1);
        var trainer = new Trainer(model, Optimizer.Create(new OptimizerOptions { Name = "momentum", LearningRate = 0.01f }, model.NamedParameters), Batch);
        var random = new SeededRandom(2);
        foreach (ref float v in trainer.Images.Span)
        {
            v = random.NextGaussian();
        }
        for (int i = 0; i < Batch; i++)
        {
            trainer.Labels[i] = random.NextInt(10);
        }
        return trainer;
    }

    [GlobalCleanup]
    public void Cleanup() => _team.Dispose();

    [Benchmark]
    public float Step() => _trainer!.Step(Batch);
}
