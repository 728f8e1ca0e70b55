using Cluster.Models;
using Cluster.Optim;
using Cluster.Tensors;
using Cluster.Training;

namespace Cluster.Tests.Performance;

/// <summary>Runs alone, so that timings and allocations of other tests do not interleave with it.</summary>
[CollectionDefinition(nameof(AllocationCollection), DisableParallelization = true)]
public sealed class AllocationCollection;

/// <summary>A training step allocates nothing once warmed up: buffers are owned and reused.</summary>
[Collection(nameof(AllocationCollection))]
public sealed class SteadyStateAllocationTests
{
    [Theory]
    [InlineData("lenet", 1)]
    [InlineData("lenet", 2)]
    [InlineData("mlp", 2)]
    [InlineData("resnet", 2)]
    public void TrainingStepDoesNotAllocate(string preset, int threads)
    {
        using var team = new ThreadTeam(threads);
        var model = new Sequential(ModelPresets.Resolve(preset)) { Team = team };
        model.Initialize(3);
        var trainer = new Trainer(model, Optimizer.Create(new OptimizerOptions { Name = "adam", LearningRate = 1e-3f, WeightDecay = 1e-4f }, model.NamedParameters), 32);
        var random = new SeededRandom(4);
        foreach (ref float v in trainer.Images.Span)
        {
            v = random.NextGaussian();
        }
        for (int i = 0; i < 32; i++)
        {
            trainer.Labels[i] = random.NextInt(10);
        }
        // Warm up, including a smaller last batch, so that every buffer and cached delegate exists.
        trainer.Step(32);
        trainer.Step(20);
        trainer.Step(32);

        // NOTE: counted on this thread only, so the test runner's own background work is not
        // charged to the step; the team's other members run the same bodies as member 0.
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 5; i++)
        {
            trainer.Step(i % 2 == 0 ? 32 : 20);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(allocated < 512, $"5 steps allocated {allocated} bytes");
    }
}
