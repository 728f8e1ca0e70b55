using System.Numerics;

namespace Cluster.Optim;

/// <summary>
/// The moment buffers and the bias-corrected step shared by <see cref="Adam"/> and
/// <see cref="AdamW"/>: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
/// w ← w − η · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε).
/// </summary>
internal sealed class AdamMoments
{
    private readonly float[] _m;
    private readonly float[] _v;

    /// <summary>Validates β₁, β₂ and ε (naming <paramref name="name"/>) and zeroes the moments.</summary>
    public AdamMoments(string name, OptimizerOptions options, int size)
    {
        if (!(options.Beta1 is >= 0f and < 1f) || !(options.Beta2 is >= 0f and < 1f) || !(options.Epsilon > 0f))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"{name} needs 0 ≤ β₁, β₂ < 1 and ε > 0; got β₁={options.Beta1} β₂={options.Beta2} ε={options.Epsilon}");
        }
        _m = new float[size];
        _v = new float[size];
    }

    /// <summary>Applies step <paramref name="step"/> (from 1) with step size <paramref name="learningRate"/>.</summary>
    public void Apply(Span<float> parameters, ReadOnlySpan<float> gradients, OptimizerOptions options, float learningRate, long step)
    {
        float b1 = options.Beta1, b2 = options.Beta2;
        float correction1 = 1f - MathF.Pow(b1, step);
        float correction2 = 1f - MathF.Pow(b2, step);
        float stepSize = learningRate / correction1;
        float rootCorrection2 = MathF.Sqrt(correction2);
        int i = 0;
        int width = Vector<float>.Count;
        var vb1 = new Vector<float>(b1);
        var vb2 = new Vector<float>(b2);
        var v1b1 = new Vector<float>(1f - b1);
        var v1b2 = new Vector<float>(1f - b2);
        var vStep = new Vector<float>(stepSize);
        var vRoot = new Vector<float>(1f / rootCorrection2);
        var vEps = new Vector<float>(options.Epsilon);
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
            parameters[i] -= stepSize * _m[i] / (MathF.Sqrt(_v[i]) / rootCorrection2 + options.Epsilon);
        }
    }
}
