using Cluster.Models;

namespace Cluster.Optim;

/// <summary>
/// Stochastic gradient descent, plain or with (Nesterov) momentum, exactly as PyTorch's SGD:
/// v ← μ·v + g; plain: w ← w − η·g; momentum: w ← w − η·v; Nesterov: w ← w − η·(g + μ·v).
/// </summary>
public sealed class Sgd : Optimizer
{
    private readonly float[] _velocity;
    private readonly float[] _lookahead;

    /// <summary>Creates the optimizer; <paramref name="momentum"/> 0 gives plain SGD.</summary>
    public Sgd(OptimizerOptions options, IReadOnlyList<NamedParameter> layout, float momentum, bool nesterov)
        : base(options, layout)
    {
        if (!(momentum >= 0f && momentum < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(momentum), $"momentum {momentum} must be in [0, 1)");
        }
        Momentum = momentum;
        Nesterov = nesterov;
        _velocity = momentum > 0f ? new float[Size] : [];
        _lookahead = nesterov ? new float[Size] : [];
    }

    /// <summary>The momentum coefficient μ (0: plain SGD).</summary>
    public float Momentum { get; }

    /// <summary>Whether the Nesterov look-ahead is used.</summary>
    public bool Nesterov { get; }

    /// <inheritdoc/>
    protected override IEnumerable<(string Name, float[] Values)> StateBuffers =>
        Momentum > 0f ? [("momentum_buffer", _velocity)] : [];

    /// <inheritdoc/>
    protected override void Update(int offset, Span<float> parameters, ReadOnlySpan<float> gradients)
    {
        if (Momentum == 0f)
        {
            TensorPrimitives.MultiplyAdd(gradients, -LearningRate, parameters, parameters);
            return;
        }
        var velocity = _velocity.AsSpan(offset, parameters.Length);
        TensorPrimitives.MultiplyAdd(velocity, Momentum, gradients, velocity);
        if (Nesterov)
        {
            var lookahead = _lookahead.AsSpan(offset, parameters.Length);
            TensorPrimitives.MultiplyAdd(velocity, Momentum, gradients, lookahead);
            TensorPrimitives.MultiplyAdd(lookahead, -LearningRate, parameters, parameters);
        }
        else
        {
            TensorPrimitives.MultiplyAdd(velocity, -LearningRate, parameters, parameters);
        }
    }
}
