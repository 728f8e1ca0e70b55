using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>Logistic sigmoid: y = 1 / (1 + e⁻ˣ); dy/dx = y(1 − y).</summary>
public sealed class Sigmoid : Activation
{
    /// <inheritdoc/>
    public override string Kind => "sigmoid";

    /// <inheritdoc/>
    protected override void ForwardChunk(ReadOnlySpan<float> x, Span<float> y) => FastMath.Sigmoid(x, y);

    /// <inheritdoc/>
    protected override void BackwardChunk(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        for (int i = 0; i < y.Length; i++)
        {
            dx[i] = dy[i] * y[i] * (1f - y[i]);
        }
    }
}
