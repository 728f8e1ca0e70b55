using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Tensors;
using Cluster.Training;

namespace Cluster.Tests.Training;

public sealed class TrainerTests
{
    private const string SmallMlp = "input 1 4 4; flatten; dense 32; relu; dense 3";

    /// <summary>Big enough that the GEMMs split over two threads (rows, columns, inner dimension) and the convolution's weight gradient takes the dot-product path.</summary>
    private const string ThreadedNet = "input 1 4 4; conv2d 8 3 pad=1; relu; flatten; dense 256; relu; dense 3";

    [Fact]
    public void Training_on_a_separable_problem_drives_the_loss_down_more_than_fivefold()
    {
        var data = Stripes(count: 300, seed: 1);
        var model = new Sequential(ModelSpec.Parse(SmallMlp));
        model.Initialize(5);
        var optimizer = Optimizer.Create(new OptimizerOptions { Name = "momentum", LearningRate = 0.05f }, model.NamedParameters);

        float[] losses = Train(model, optimizer, data, steps: 300, batch: 32, seed: 2);

        double first = losses.Take(10).Average(), last = losses.TakeLast(10).Average();
        Assert.True(last * 5 < first, $"loss went from {first} to {last}");
        Assert.Equal(1.0, Trainer.Evaluate(model, data).Accuracy);
    }

    [Fact]
    public void Evaluate_counts_the_samples_whose_highest_output_is_the_label()
    {
        var model = new Sequential(ModelSpec.Parse("input 1 1 3; flatten; dense 3"));
        // Identity weights, zero biases: the outputs are the pixels.
        Array.Clear(model.Parameters);
        model.Parameters[0] = model.Parameters[4] = model.Parameters[8] = 1f;
        float[] images =
        [
            3, 1, 2, // argmax 0
            0, 5, 1, // 1
            0, 1, 2, // 2
            9, 8, 7, // 0
            1, 3, 2, // 1
            2, 1, 0, // 0
            4, 6, 5, // 1
        ];
        byte[] labels = [0, 1, 0, 0, 2, 0, 1]; // samples 2 and 4 are wrong
        var data = new Dataset(images, labels, 1, 1, 3, 3);

        // Batches of 3, 3 and 1.
        var evaluation = Trainer.Evaluate(model, data, batchSize: 3);

        Assert.Equal(7, evaluation.Count);
        Assert.Equal(5.0 / 7, evaluation.Accuracy, 1e-12);
        double expectedLoss = 0;
        for (int n = 0; n < 7; n++)
        {
            var z = images.AsSpan(n * 3, 3).ToArray();
            expectedLoss += Math.Log(z.Sum(v => Math.Exp(v))) - z[labels[n]];
        }
        Assert.Equal(expectedLoss / 7, evaluation.Loss, 1e-5);
    }

    [Fact]
    public void The_same_seed_and_data_give_bit_identical_parameters_on_two_threads()
    {
        var data = Stripes(count: 256, seed: 3);
        using var team = new ThreadTeam(2);

        (float[] first, _) = TrainThreaded(data, team, steps: 12);
        (float[] second, _) = TrainThreaded(data, team, steps: 12);

        Assert.Equal(first, second);
    }

    [Fact]
    public void One_thread_and_two_threads_give_the_same_losses()
    {
        var data = Stripes(count: 256, seed: 4);
        using var team = new ThreadTeam(2);

        (float[] oneParameters, float[] one) = TrainThreaded(data, ThreadTeam.Single, steps: 30);
        (float[] twoParameters, float[] two) = TrainThreaded(data, team, steps: 30);

        Assert.Equal(one, two, (a, b) => Math.Abs(a - b) <= 1e-4f);
        Assert.Equal(oneParameters, twoParameters, (a, b) => Math.Abs(a - b) <= 1e-4f);
        Assert.True(one[^1] < one[0], "the run should learn something");
    }

    [Fact]
    public void Step_returns_the_loss_before_the_update_and_changes_the_parameters()
    {
        var data = Stripes(count: 16, seed: 5);
        var model = new Sequential(ModelSpec.Parse(SmallMlp));
        model.Initialize(1);
        var trainer = new Trainer(model, Optimizer.Create(new OptimizerOptions { Name = "sgd", LearningRate = 0.1f }, model.NamedParameters), maxBatch: 16);
        data.Images.CopyTo(trainer.Images.Data, 0);
        for (int i = 0; i < 16; i++)
        {
            trainer.Labels[i] = data.Labels[i];
        }
        double before = Trainer.Evaluate(model, data).Loss;
        float[] parameters = (float[])model.Parameters.Clone();

        float loss = trainer.Step(16);

        Assert.Equal(before, loss, 1e-5);
        Assert.NotEqual(parameters, model.Parameters);
        Assert.True(Trainer.Evaluate(model, data).Loss < before);
    }

    private static (float[] Parameters, float[] Losses) TrainThreaded(Dataset data, ThreadTeam team, int steps)
    {
        var model = new Sequential(ModelSpec.Parse(ThreadedNet)) { Team = team };
        model.Initialize(11);
        var optimizer = Optimizer.Create(new OptimizerOptions { Name = "adam", LearningRate = 1e-3f }, model.NamedParameters);
        float[] losses = Train(model, optimizer, data, steps, batch: 64, seed: 6);
        return (model.Parameters, losses);
    }

    /// <summary>Runs <paramref name="steps"/> training steps over seeded epochs of <paramref name="data"/> and returns each step's loss.</summary>
    private static float[] Train(Sequential model, Optimizer optimizer, Dataset data, int steps, int batch, ulong seed)
    {
        var trainer = new Trainer(model, optimizer, batch);
        var batches = new BatchIterator(data, batch, seed);
        float[] losses = new float[steps];
        int epoch = 0;
        batches.StartEpoch(epoch);
        for (int step = 0; step < steps; step++)
        {
            int count = batches.Next(trainer.Images.Data, trainer.Labels);
            if (count == 0)
            {
                batches.StartEpoch(++epoch);
                count = batches.Next(trainer.Images.Data, trainer.Labels);
            }
            losses[step] = trainer.Step(count);
        }
        return losses;
    }

    /// <summary>Three classes of noisy 4×4 images: class c has a bright row c (and noise everywhere).</summary>
    private static Dataset Stripes(int count, int seed)
    {
        var random = new Random(seed);
        float[] images = new float[count * 16];
        byte[] labels = new byte[count];
        for (int n = 0; n < count; n++)
        {
            int label = random.Next(3);
            labels[n] = (byte)label;
            for (int p = 0; p < 16; p++)
            {
                images[(n * 16) + p] = (float)(((random.NextDouble() * 2) - 1) * 0.5) + (p / 4 == label ? 1f : 0f);
            }
        }
        return new Dataset(images, labels, 1, 4, 4, 3);
    }
}
