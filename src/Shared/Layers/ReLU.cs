using System.Runtime.Intrinsics;

namespace Cluster.Layers;

/// <summary>Rectified linear unit: y = max(x, 0); the gradient passes where x &gt; 0.</summary>
public sealed class ReLU : Activation
{
    /// <inheritdoc/>
    public override string Kind => "relu";

    /// <inheritdoc/>
    protected override void ForwardChunk(ReadOnlySpan<float> x, Span<float> y) => TensorPrimitives.Max(x, 0f, y);

    /// <inheritdoc/>
    protected override void BackwardChunk(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= x.Length - 8; i += 8)
            {
                var mask = Vector256.GreaterThan(Vector256.Create(x.Slice(i, 8)), Vector256<float>.Zero);
                (mask & Vector256.Create(dy.Slice(i, 8))).CopyTo(dx.Slice(i, 8));
            }
        }
        for (; i < x.Length; i++)
        {
            dx[i] = x[i] > 0f ? dy[i] : 0f;
        }
    }
}
