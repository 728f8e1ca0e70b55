using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>Hyperbolic tangent: y = tanh x; dy/dx = 1 − y².</summary>
public sealed class Tanh : Activation
{
    /// <inheritdoc/>
    public override string Kind => "tanh";

    /// <inheritdoc/>
    protected override void ForwardChunk(ReadOnlySpan<float> x, Span<float> y) => FastMath.Tanh(x, y);

    /// <inheritdoc/>
    protected override void BackwardChunk(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        for (int i = 0; i < y.Length; i++)
        {
            dx[i] = dy[i] * (1f - y[i] * y[i]);
        }
    }
}
