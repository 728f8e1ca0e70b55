using Cluster.Models;

namespace Cluster.Optim;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter), as PyTorch computes it: weight decay is decoupled from the
/// gradient. Each step first decays the weights, w ← w − η·λ·w (weights only; biases are left
/// alone), then takes the plain Adam step on the raw gradient: m ← β₁m + (1−β₁)g,
/// v ← β₂v + (1−β₂)g², w ← w − η · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε).
/// Defaults β₁ 0.9, β₂ 0.999, ε 1e-8, λ = <see cref="OptimizerOptions.WeightDecay"/> (0 unless set;
/// PyTorch's AdamW defaults to 0.01).
/// </summary>
public sealed class AdamW : Optimizer
{
    private readonly AdamMoments _moments;

    /// <summary>Creates the optimizer with zeroed moments.</summary>
    public AdamW(OptimizerOptions options, IReadOnlyList<NamedParameter> layout)
        : base(options, layout)
    {
        _moments = new AdamMoments("adamw", options, Size);
    }

    /// <summary>AdamW decays the weights itself, so λ·w is never added to the gradient.</summary>
    protected override bool FoldsWeightDecayIntoGradient => false;

    /// <inheritdoc/>
    protected override IEnumerable<(string Name, float[] Values)> StateBuffers => _moments.Buffers;

    /// <inheritdoc/>
    protected override void Update(int offset, Span<float> parameters, ReadOnlySpan<float> gradients)
    {
        float lambda = Options.WeightDecay;
        if (lambda > 0f)
        {
            float keep = 1f - LearningRate * lambda;
            foreach (var p in Layout)
            {
                if (DecayingPart(p, offset, parameters.Length, out int start, out int count))
                {
                    var w = parameters.Slice(start, count);
                    TensorPrimitives.Multiply(w, keep, w);
                }
            }
        }
        _moments.Apply(offset, parameters, gradients, Options, LearningRate, StepCount);
    }
}
