using Cluster.Models;
using Cluster.Optim;
using Cluster.ParameterServer.Rules;
using Cluster.Training;
using Xunit.Abstractions;

namespace Cluster.ParameterServer.Tests;

/// <summary>
/// The cluster's main oracle: in sync mode, N workers with local batch B produce the weights one
/// process produces on the concatenated batch N·B, from the same seed.
/// </summary>
public sealed class SyncEquivalenceTests(ITestOutputHelper output)
{
    private const int Batch = 16;
    private const int Steps = 4;
    private static readonly OptimizerOptions Momentum = new() { Name = "momentum", LearningRate = 0.05f };

    [Theory]
    [InlineData("mlp", 2)]
    [InlineData("mlp", 3)]
    [InlineData("lenet", 2)]
    [InlineData("lenet", 3)]
    public void SyncWorkersEqualOneProcessOnTheConcatenatedBatch(string preset, int workers)
    {
        var data = InProcessCluster.Data.Train;
        var spec = ModelPresets.Resolve(preset);

        var single = new Sequential(spec);
        single.Initialize(7);
        var reference = new Trainer(single, Optimizer.Create(Momentum, single.NamedParameters), workers * Batch);

        var cluster = new InProcessCluster(preset, "sync", workers, 0, Momentum, seed: 7);
        var models = Enumerable.Range(0, workers).Select(_ => new Sequential(spec)).ToArray();
        var trainers = models.Select(m => new Trainer(m, Optimizer.Create(new OptimizerOptions { Name = "sgd" }, m.NamedParameters), Batch)).ToArray();

        for (int step = 0; step < Steps; step++)
        {
            int first = step * workers * Batch;
            Fill(reference, data, first, workers * Batch);
            reference.Step(workers * Batch);

            // Workers push in reverse rank order: the sum must not depend on arrival order.
            for (int i = workers - 1; i >= 0; i--)
            {
                cluster.Store.CopyWeights(models[i].Parameters);
                Fill(trainers[i], data, first + i * Batch, Batch);
                float loss = trainers[i].ComputeGradient(Batch);
                var gradient = cluster.Pool.Rent();
                models[i].Gradients.CopyTo(gradient, 0);
                var outcome = cluster.Rule.Submit(new Gradient(i, step, cluster.Store.Version, gradient, loss, Batch));
                Assert.Equal(i == 0 ? PushOutcome.Applied : PushOutcome.Queued, outcome);
            }
            Assert.Equal(step + 1, cluster.Store.Version);
        }

        var distributed = cluster.Weights();
        double maxDiff = 0, maxWeight = 0, maxUpdate = 0;
        var initial = new Sequential(spec);
        initial.Initialize(7);
        for (int k = 0; k < distributed.Length; k++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(distributed[k] - single.Parameters[k]));
            maxWeight = Math.Max(maxWeight, Math.Abs(single.Parameters[k]));
            maxUpdate = Math.Max(maxUpdate, Math.Abs(single.Parameters[k] - initial.Parameters[k]));
        }
        output.WriteLine($"{preset}, {workers} workers × batch {Batch}, {Steps} steps: max |Δw| = {maxDiff:E2}, max |w| = {maxWeight:F3}, max update {maxUpdate:E2}");
        // NOTE: not bit-identical: one process sums each weight gradient over all N·B samples inside
        // one GEMM, the cluster sums N per-worker means; float addition is not associative.
        Assert.True(maxUpdate > 1e-3, "the steps must actually move the weights");
        Assert.True(maxDiff <= 1e-6 * maxWeight, $"max |Δw| {maxDiff:E2} exceeds 1e-6 × max |w| ({maxWeight:F3})");
    }

    [Fact]
    public void ArrivalOrderDoesNotChangeTheResultByASingleBit()
    {
        float[] Run(int[] order)
        {
            var cluster = new InProcessCluster("mlp", "sync", 3, 0, Momentum, seed: 3);
            var spec = cluster.Spec;
            var random = new Tensors.SeededRandom(9);
            var gradients = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, cluster.Store.Size).Select(_ => random.NextGaussian() * 1e-2f).ToArray()).ToArray();
            foreach (int worker in order)
            {
                var buffer = cluster.Pool.Rent();
                gradients[worker].CopyTo(buffer, 0);
                cluster.Rule.Submit(new Gradient(worker, 0, 0, buffer, 1f, 16));
            }
            _ = spec;
            return cluster.Weights();
        }

        Assert.Equal(Run([0, 1, 2]), Run([2, 0, 1]));
    }

    private static void Fill(Trainer trainer, Data.Dataset data, int first, int count)
    {
        trainer.Images.SetBatchSize(count);
        data.Images.AsSpan(first * data.SampleSize, count * data.SampleSize).CopyTo(trainer.Images.Span);
        for (int i = 0; i < count; i++)
        {
            trainer.Labels[i] = data.Labels[first + i];
        }
    }
}
