using Cluster.Models;

namespace Cluster.Optim;

/// <summary>
/// RMSprop (Hinton), as PyTorch computes it (not centred): v ← α·v + (1−α)·g²; without momentum
/// w ← w − η·g / (√v + ε); with momentum μ > 0, b ← μ·b + g / (√v + ε) and w ← w − η·b (b starts
/// at 0). Defaults α 0.99 (<see cref="OptimizerOptions.Alpha"/>), ε 1e-8
/// (<see cref="OptimizerOptions.Epsilon"/>), μ 0. Weight decay λ is L2 (g ← g + λw, weights only).
/// </summary>
public sealed class RmsProp : Optimizer
{
    private readonly float[] _square;
    private readonly float[] _buffer;

    /// <summary>Creates the optimizer with a zeroed average; <paramref name="momentum"/> μ defaults to 0.</summary>
    public RmsProp(OptimizerOptions options, IReadOnlyList<NamedParameter> layout, float momentum = 0f)
        : base(options, layout)
    {
        if (!(options.Alpha is >= 0f and < 1f) || !(options.Epsilon > 0f))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"rmsprop needs 0 ≤ α < 1 and ε > 0; got α={options.Alpha} ε={options.Epsilon}");
        }
        if (!(momentum is >= 0f and < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(momentum), $"momentum {momentum} must be in [0, 1)");
        }
        Momentum = momentum;
        _square = new float[Size];
        _buffer = momentum > 0f ? new float[Size] : [];
    }

    /// <summary>The momentum coefficient μ (0: none).</summary>
    public float Momentum { get; }

    /// <inheritdoc/>
    protected override IEnumerable<(string Name, float[] Values)> StateBuffers =>
        Momentum > 0f ? [("square_avg", _square), ("momentum_buffer", _buffer)] : [("square_avg", _square)];

    /// <inheritdoc/>
    protected override void Update(int offset, Span<float> parameters, ReadOnlySpan<float> gradients)
    {
        float alpha = Options.Alpha, epsilon = Options.Epsilon, rate = LearningRate;
        for (int i = 0; i < parameters.Length; i++)
        {
            float g = gradients[i];
            float v = alpha * _square[offset + i] + (1f - alpha) * g * g;
            _square[offset + i] = v;
            float scaled = g / (MathF.Sqrt(v) + epsilon);
            if (Momentum > 0f)
            {
                scaled = _buffer[offset + i] = Momentum * _buffer[offset + i] + scaled;
            }
            parameters[i] -= rate * scaled;
        }
    }
}
