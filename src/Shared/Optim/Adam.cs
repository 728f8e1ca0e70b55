using System.Numerics;
using Cluster.Models;

namespace Cluster.Optim;

/// <summary>
/// Adam (Kingma &amp; Ba), as PyTorch computes it: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
/// w ← w − η · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε).
/// </summary>
public sealed class Adam : Optimizer
{
    private readonly float[] _m;
    private readonly float[] _v;

    /// <summary>Creates the optimizer with zeroed moments.</summary>
    public Adam(OptimizerOptions options, IReadOnlyList<NamedParameter> layout)
        : base(options, layout)
    {
        if (!(options.Beta1 is >= 0f and < 1f) || !(options.Beta2 is >= 0f and < 1f) || !(options.Epsilon > 0f))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"adam needs 0 ≤ β₁, β₂ < 1 and ε > 0; got β₁={options.Beta1} β₂={options.Beta2} ε={options.Epsilon}");
        }
        _m = new float[Size];
        _v = new float[Size];
    }

    /// <inheritdoc/>
    protected override void Update(Span<float> parameters, ReadOnlySpan<float> gradients)
    {
        float b1 = Options.Beta1, b2 = Options.Beta2;
        float correction1 = 1f - MathF.Pow(b1, StepCount);
        float correction2 = 1f - MathF.Pow(b2, StepCount);
        float stepSize = LearningRate / correction1;
        float rootCorrection2 = MathF.Sqrt(correction2);
        int i = 0;
        int width = Vector<float>.Count;
        var vb1 = new Vector<float>(b1);
        var vb2 = new Vector<float>(b2);
        var v1b1 = new Vector<float>(1f - b1);
        var v1b2 = new Vector<float>(1f - b2);
        var vStep = new Vector<float>(stepSize);
        var vRoot = new Vector<float>(1f / rootCorrection2);
        var vEps = new Vector<float>(Options.Epsilon);
        for (; i <= parameters.Length - width; i += width)
        {
            var g = new Vector<float>(gradients[i..]);
            var m = vb1 * new Vector<float>(_m.AsSpan(i)) + v1b1 * g;
            var v = vb2 * new Vector<float>(_v.AsSpan(i)) + v1b2 * g * g;
            m.CopyTo(_m.AsSpan(i));
            v.CopyTo(_v.AsSpan(i));
            var w = new Vector<float>(parameters[i..]) - vStep * m / (Vector.SquareRoot(v) * vRoot + vEps);
            w.CopyTo(parameters[i..]);
        }
        for (; i < parameters.Length; i++)
        {
            float g = gradients[i];
            _m[i] = b1 * _m[i] + (1f - b1) * g;
            _v[i] = b2 * _v[i] + (1f - b2) * g * g;
            parameters[i] -= stepSize * _m[i] / (MathF.Sqrt(_v[i]) / rootCorrection2 + Options.Epsilon);
        }
    }
}
