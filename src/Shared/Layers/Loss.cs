using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// A loss over a batch of network outputs [batch, classes] and integer class labels, averaged over
/// the batch. <see cref="Backward"/> gives the gradient of that mean with respect to the outputs.
/// </summary>
public abstract class Loss
{
    /// <summary>The loss's name as written in a model spec.</summary>
    public abstract string Name { get; }

    /// <summary>The mean loss of the batch; keeps what <see cref="Backward"/> needs.</summary>
    public abstract float Forward(Tensor output, ReadOnlySpan<int> labels);

    /// <summary>Writes d(mean loss)/d(output) into <paramref name="gradient"/> (same shape as the output).</summary>
    public abstract void Backward(Tensor output, ReadOnlySpan<int> labels, Tensor gradient);

    /// <summary>Creates a loss by name: <c>cross-entropy</c> or <c>mse</c>.</summary>
    public static Loss Create(string name) => name switch
    {
        "cross-entropy" => new SoftmaxCrossEntropy(),
        "mse" => new MeanSquaredError(),
        _ => throw new Models.ModelSpecException($"unknown loss '{name}': use cross-entropy or mse"),
    };

    /// <summary>Checks that every label is a valid class index.</summary>
    protected static void CheckLabels(Tensor output, ReadOnlySpan<int> labels)
    {
        int classes = output.SampleSize;
        if (labels.Length != output.BatchSize)
        {
            throw new ArgumentException($"{labels.Length} labels for a batch of {output.BatchSize}");
        }
        foreach (int label in labels)
        {
            if ((uint)label >= (uint)classes)
            {
                throw new ArgumentException($"label {label} is outside the {classes} classes of the output");
            }
        }
    }
}
