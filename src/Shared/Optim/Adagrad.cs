using Cluster.Models;

namespace Cluster.Optim;

/// <summary>
/// Adagrad (Duchi et al.), as PyTorch computes it with no learning-rate decay and a zero initial
/// accumulator: s ← s + g²; w ← w − η·g / (√s + ε), with ε 1e-10 by default (PyTorch's, not
/// <see cref="OptimizerOptions.Epsilon"/>). Weight decay λ is L2 (g ← g + λw, weights only).
/// </summary>
public sealed class Adagrad : Optimizer
{
    /// <summary>PyTorch's default ε for Adagrad: 1e-10.</summary>
    public const float DefaultEpsilon = 1e-10f;

    private readonly float[] _sum;

    /// <summary>Creates the optimizer with a zeroed accumulator; <paramref name="epsilon"/> defaults to 1e-10.</summary>
    public Adagrad(OptimizerOptions options, IReadOnlyList<NamedParameter> layout, float epsilon = DefaultEpsilon)
        : base(options, layout)
    {
        if (!(epsilon > 0f))
        {
            throw new ArgumentOutOfRangeException(nameof(epsilon), $"adagrad ε {epsilon} must be > 0");
        }
        Epsilon = epsilon;
        _sum = new float[Size];
    }

    /// <summary>The ε added to √s.</summary>
    public float Epsilon { get; }

    /// <inheritdoc/>
    protected override IEnumerable<(string Name, float[] Values)> StateBuffers => [("sum", _sum)];

    /// <inheritdoc/>
    protected override void Update(int offset, Span<float> parameters, ReadOnlySpan<float> gradients)
    {
        float rate = LearningRate;
        for (int i = 0; i < parameters.Length; i++)
        {
            float g = gradients[i];
            float s = _sum[offset + i] + g * g;
            _sum[offset + i] = s;
            parameters[i] -= rate * g / (MathF.Sqrt(s) + Epsilon);
        }
    }
}
