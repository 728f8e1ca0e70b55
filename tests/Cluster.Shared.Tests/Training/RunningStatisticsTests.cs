using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Training;
using Xunit.Abstractions;

namespace Cluster.Tests.Training;

public sealed class RunningStatisticsTests(ITestOutputHelper output)
{
    private const string BatchNormCnn = "input 1 28 28; conv2d 8 3; batchnorm2d; relu; maxpool2d 2; flatten; dense 32; batchnorm1d; relu; dense 10";

    [Fact]
    public void A_weights_only_copy_recalibrated_evaluates_as_the_trained_model()
    {
        var data = FashionMnist.LoadEmbedded();
        var trained = new Sequential(ModelSpec.Parse(BatchNormCnn));
        trained.Initialize(3);
        var trainer = new Trainer(trained, Optimizer.Create(new OptimizerOptions { Name = "adam", LearningRate = 1e-3f }, trained.NamedParameters), 64);
        var batches = new BatchIterator(data.Train, 64, seed: 3);
        batches.StartEpoch(0);
        for (int step = 0; step < 120; step++)
        {
            int count = batches.Next(trainer.Images.Span, trainer.Labels);
            trainer.Step(count);
        }
        var reference = Trainer.Evaluate(trained, data.Test);

        // What a parameter server holds: the weights, with batch norm's starting statistics.
        var copy = new Sequential(trained.Spec);
        trained.Parameters.CopyTo(copy.Parameters, 0);
        var before = Trainer.Evaluate(copy, data.Test);
        RunningStatistics.Recalibrate(copy, data.Train, seed: 11);
        var after = Trainer.Evaluate(copy, data.Test);

        output.WriteLine($"test accuracy: trained {reference.Accuracy:P2}, weights only {before.Accuracy:P2}, recalibrated {after.Accuracy:P2}");
        Assert.True(Math.Abs(after.Accuracy - reference.Accuracy) <= 0.02, $"recalibrated {after.Accuracy:P2} vs trained {reference.Accuracy:P2}");
        Assert.True(before.Accuracy < reference.Accuracy - 0.05, $"the starting statistics should hurt: {before.Accuracy:P2} vs {reference.Accuracy:P2}");
    }

    [Fact]
    public void A_model_without_running_statistics_is_left_alone()
    {
        var model = new Sequential(ModelPresets.Resolve("mlp"));
        model.Initialize(1);
        var weights = model.Parameters.ToArray();

        RunningStatistics.Recalibrate(model, FashionMnist.LoadEmbedded().Train, seed: 1);

        Assert.Equal(weights, model.Parameters);
    }
}
