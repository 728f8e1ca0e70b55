using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// Mean squared error against one-hot targets (for labels) or given targets, averaged over every
/// element as PyTorch's MSELoss does: loss = Σ (y − t)² / (batch · outputs).
/// </summary>
public sealed class MeanSquaredError : Loss
{
    private float[] _targets = [];

    /// <inheritdoc/>
    public override string Name => "mse";

    /// <inheritdoc/>
    public override float Forward(Tensor output, ReadOnlySpan<int> labels)
    {
        CheckLabels(output, labels);
        return Forward(output, OneHot(output, labels));
    }

    /// <inheritdoc/>
    public override void Backward(Tensor output, ReadOnlySpan<int> labels, Tensor gradient)
    {
        CheckLabels(output, labels);
        Backward(output, OneHot(output, labels), gradient);
    }

    /// <summary>The loss against explicit targets of the output's shape.</summary>
    public static float Forward(Tensor output, ReadOnlySpan<float> targets)
    {
        var y = output.Span;
        double sum = 0;
        for (int i = 0; i < y.Length; i++)
        {
            double d = y[i] - targets[i];
            sum += d * d;
        }
        return (float)(sum / y.Length);
    }

    /// <summary>The gradient against explicit targets: 2(y − t) / (batch · outputs).</summary>
    public static void Backward(Tensor output, ReadOnlySpan<float> targets, Tensor gradient)
    {
        var y = output.Span;
        var g = gradient.Span;
        float scale = 2f / y.Length;
        for (int i = 0; i < y.Length; i++)
        {
            g[i] = scale * (y[i] - targets[i]);
        }
    }

    private ReadOnlySpan<float> OneHot(Tensor output, ReadOnlySpan<int> labels)
    {
        if (_targets.Length < output.Length)
        {
            _targets = new float[output.Length];
        }
        var t = _targets.AsSpan(0, output.Length);
        t.Clear();
        for (int n = 0; n < labels.Length; n++)
        {
            t[n * output.SampleSize + labels[n]] = 1f;
        }
        return t;
    }
}
