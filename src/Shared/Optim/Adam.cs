using Cluster.Models;

namespace Cluster.Optim;

/// <summary>
/// Adam (Kingma &amp; Ba), as PyTorch computes it: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
/// w ← w − η · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε). Defaults β₁ 0.9, β₂ 0.999, ε 1e-8; weight
/// decay λ is L2, added to the gradient (g ← g + λw) for weights only.
/// </summary>
public sealed class Adam : Optimizer
{
    private readonly AdamMoments _moments;

    /// <summary>Creates the optimizer with zeroed moments.</summary>
    public Adam(OptimizerOptions options, IReadOnlyList<NamedParameter> layout)
        : base(options, layout)
    {
        _moments = new AdamMoments("adam", options, Size);
    }

    /// <inheritdoc/>
    protected override IEnumerable<(string Name, float[] Values)> StateBuffers => _moments.Buffers;

    /// <inheritdoc/>
    protected override void Update(int offset, Span<float> parameters, ReadOnlySpan<float> gradients) =>
        _moments.Apply(offset, parameters, gradients, Options, LearningRate, StepCount);
}
