using System.Diagnostics;
using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Tensors;
using Cluster.Training;
using Xunit.Abstractions;

namespace Cluster.Tests.Training;

public sealed class LearningTests(ITestOutputHelper output)
{
    [Fact]
    public void Mlp_trained_on_the_embedded_subset_reaches_80_percent_test_accuracy()
    {
        const int Batch = 64, Epochs = 2;
        var data = FashionMnist.LoadEmbedded();
        using var team = new ThreadTeam(2);
        var model = new Sequential(ModelPresets.Resolve("mlp")) { Team = team };
        model.Initialize(seed: 1);
        var trainer = new Trainer(model, Optimizer.Create(new OptimizerOptions { Name = "adam", LearningRate = 1e-3f }, model.NamedParameters), Batch);
        var batches = new BatchIterator(data.Train, Batch, seed: 1);
        var clock = Stopwatch.StartNew();

        for (int epoch = 0; epoch < Epochs; epoch++)
        {
            batches.StartEpoch(epoch);
            int count;
            while ((count = batches.Next(trainer.Images.Data, trainer.Labels)) > 0)
            {
                trainer.Step(count);
            }
        }
        var test = Trainer.Evaluate(model, data.Test);

        output.WriteLine($"mlp, adam 1e-3, batch {Batch}, {Epochs} epochs of {data.Train.Count}: test accuracy {test.Accuracy:P2}, test loss {test.Loss:F4}, {clock.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(data.Test.Count, test.Count);
        Assert.True(test.Accuracy >= 0.80, $"test accuracy {test.Accuracy:P2} is below 80%");
    }
}
