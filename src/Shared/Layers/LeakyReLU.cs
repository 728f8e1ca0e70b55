using Cluster.Models;

namespace Cluster.Layers;

/// <summary>Leaky ReLU: y = x for x &gt; 0, else slope·x (default slope 0.01, as in PyTorch).</summary>
public sealed class LeakyReLU : Activation
{
    /// <summary>Creates the layer with the negative-side slope.</summary>
    public LeakyReLU(float slope = 0.01f)
    {
        if (!(slope >= 0f && slope < 1f))
        {
            throw new ModelSpecException($"leakyrelu slope must be in [0, 1), got {slope}");
        }
        Slope = slope;
    }

    /// <summary>The gradient for negative inputs.</summary>
    public float Slope { get; }

    /// <inheritdoc/>
    public override string Kind => "leakyrelu";

    /// <inheritdoc/>
    public override string Spec => Slope == 0.01f ? Kind : $"{Kind} slope={Slope.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    /// <inheritdoc/>
    protected override void ForwardChunk(ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++)
        {
            y[i] = x[i] > 0f ? x[i] : Slope * x[i];
        }
    }

    /// <inheritdoc/>
    protected override void BackwardChunk(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        for (int i = 0; i < x.Length; i++)
        {
            dx[i] = x[i] > 0f ? dy[i] : Slope * dy[i];
        }
    }
}
