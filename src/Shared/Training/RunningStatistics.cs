using Cluster.Data;
using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Training;

/// <summary>
/// Re-estimates a model's running statistics (batch norm's mean and variance) for its current
/// weights by running training-mode forward passes over training batches. A parameter server needs
/// this: it receives gradients, not the statistics the workers' batch norms gathered, so its copy
/// of the model has weights without matching statistics until they are recomputed.
/// </summary>
public static class RunningStatistics
{
    /// <summary>Batches run by default: with batch norm's momentum 0.1 the starting values weigh 0.9¹⁰⁰ ≈ 3·10⁻⁵ after them.</summary>
    public const int DefaultBatches = 100;

    /// <summary>
    /// Runs <paramref name="batches"/> forward passes of <paramref name="batchSize"/> samples of
    /// <paramref name="data"/>, in an order seeded by <paramref name="seed"/>, in training mode, so
    /// that every batch norm's running estimates follow the current weights. Does nothing for a
    /// model without running statistics.
    /// </summary>
    public static void Recalibrate(Sequential model, Dataset data, ulong seed, int batches = DefaultBatches, int batchSize = 64)
    {
        if (model.State.Length == 0)
        {
            return;
        }
        var iterator = new BatchIterator(data, batchSize, seed);
        var input = Tensor.Zeros([batchSize, .. model.InputShape]);
        var labels = new int[batchSize];
        int epoch = 0;
        iterator.StartEpoch(epoch);
        for (int b = 0; b < batches; b++)
        {
            input.SetBatchSize(batchSize);
            int count = iterator.Next(input.Span, labels);
            if (count == 0)
            {
                iterator.StartEpoch(++epoch);
                count = iterator.Next(input.Span, labels);
            }
            input.SetBatchSize(count);
            model.Forward(input, training: true);
        }
    }
}
