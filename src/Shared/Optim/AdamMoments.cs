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

    /// <summary>The moments by PyTorch's names: m is exp_avg, v is exp_avg_sq.</summary>
    public IEnumerable<(string Name, float[] Values)> Buffers => [("exp_avg", _m), ("exp_avg_sq", _v)];

    /// <summary>
    /// Applies step <paramref name="step"/> (from 1) with step size <paramref name="learningRate"/>
    /// to the slice at <paramref name="offset"/>. The scalar tail computes exactly what the vector
    /// lanes compute, so the result does not depend on where a slice starts.
    /// </summary>
    public void Apply(int offset, Span<float> parameters, ReadOnlySpan<float> gradients, OptimizerOptions options, float learningRate, long step)
    {
        float b1 = options.Beta1, b2 = options.Beta2;
        float correction1 = 1f - MathF.Pow(b1, step);
        float correction2 = 1f - MathF.Pow(b2, step);
        float stepSize = learningRate / correction1;
        float rootCorrection2 = MathF.Sqrt(correction2);
        var moment1 = _m.AsSpan(offset, parameters.Length);
        var moment2 = _v.AsSpan(offset, parameters.Length);
        float inverseRoot = 1f / rootCorrection2;
        int i = 0;
        int width = Vector<float>.Count;
        var vb1 = new Vector<float>(b1);
        var vb2 = new Vector<float>(b2);
        var v1b1 = new Vector<float>(1f - b1);
        var v1b2 = new Vector<float>(1f - b2);
        var vStep = new Vector<float>(stepSize);
        var vRoot = new Vector<float>(inverseRoot);
        var vEps = new Vector<float>(options.Epsilon);
        for (; i <= parameters.Length - width; i += width)
        {
            var g = new Vector<float>(gradients[i..]);
            var m = vb1 * new Vector<float>(moment1[i..]) + v1b1 * g;
            var v = vb2 * new Vector<float>(moment2[i..]) + v1b2 * g * g;
            m.CopyTo(moment1[i..]);
            v.CopyTo(moment2[i..]);
            var w = new Vector<float>(parameters[i..]) - vStep * m / (Vector.SquareRoot(v) * vRoot + vEps);
            w.CopyTo(parameters[i..]);
        }
        for (; i < parameters.Length; i++)
        {
            float g = gradients[i];
            float m = b1 * moment1[i] + (1f - b1) * g;
            float v = b2 * moment2[i] + (1f - b2) * g * g;
            moment1[i] = m;
            moment2[i] = v;
            parameters[i] -= stepSize * m / (MathF.Sqrt(v) * inverseRoot + options.Epsilon);
        }
    }
}
