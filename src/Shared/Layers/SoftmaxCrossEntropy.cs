using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// Softmax followed by cross-entropy, fused: loss = −log softmax(z)[label], computed as
/// log Σ exp(z − max) − (z[label] − max) so that large logits never overflow.
/// The gradient is (softmax(z) − onehot(label)) / batch.
/// </summary>
public sealed class SoftmaxCrossEntropy : Loss
{
    /// <inheritdoc/>
    public override string Name => "cross-entropy";

    /// <inheritdoc/>
    public override float Forward(Tensor output, ReadOnlySpan<int> labels)
    {
        CheckLabels(output, labels);
        int classes = output.SampleSize;
        double total = 0;
        for (int n = 0; n < output.BatchSize; n++)
        {
            var z = output.Sample(n);
            float max = TensorPrimitives.Max(z);
            double sum = 0;
            for (int c = 0; c < classes; c++)
            {
                sum += Math.Exp(z[c] - max);
            }
            total += Math.Log(sum) - (z[labels[n]] - max);
        }
        return (float)(total / output.BatchSize);
    }

    /// <inheritdoc/>
    public override void Backward(Tensor output, ReadOnlySpan<int> labels, Tensor gradient)
    {
        CheckLabels(output, labels);
        float scale = 1f / output.BatchSize;
        for (int n = 0; n < output.BatchSize; n++)
        {
            var g = gradient.Sample(n);
            TensorPrimitives.Subtract(output.Sample(n), TensorPrimitives.Max(output.Sample(n)), g);
            TensorPrimitives.SoftMax(g, g);
            g[labels[n]] -= 1f;
            TensorPrimitives.Multiply(g, scale, g);
        }
    }
}
