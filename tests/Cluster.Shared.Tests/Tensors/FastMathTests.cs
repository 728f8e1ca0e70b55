using Cluster.Tensors;

namespace Cluster.Tests.Tensors;

public sealed class FastMathTests
{
    /// <summary>A dense grid over where the gates work, the small-|x| switch of tanh, and the extremes.</summary>
    private static float[] Points()
    {
        var points = new List<float> { 0f, -0f, 1e-30f, -1e-30f, 1e-8f, 0.2f, -0.2f, 0.19999999f, 0.20000002f, 20f, -20f, 87f, -87f, 88.5f, -88.5f, 100f, -100f, 1e30f, -1e30f };
        for (int i = -40_000; i <= 40_000; i++)
        {
            points.Add(i * 0.00047f);
        }
        // 7 + 80,001 + 19 values: not a multiple of the vector width, so the padded tail is used.
        return [.. points];
    }

    [Fact]
    public void Sigmoid_matches_double_precision_within_one_part_in_a_million()
    {
        var x = Points();
        var y = new float[x.Length];

        FastMath.Sigmoid(x, y);

        for (int i = 0; i < x.Length; i++)
        {
            double expected = 1.0 / (1.0 + Math.Exp(-(double)x[i]));
            Assert.True(Math.Abs(y[i] - expected) <= (1e-6 * expected) + 1e-38, $"sigmoid({x[i]:R}) = {y[i]:R}, expected {expected:R}");
        }
    }

    [Fact]
    public void Tanh_matches_double_precision_within_one_part_in_a_million()
    {
        var x = Points();
        var y = new float[x.Length];

        FastMath.Tanh(x, y);

        for (int i = 0; i < x.Length; i++)
        {
            double expected = Math.Tanh(x[i]);
            Assert.True(Math.Abs(y[i] - expected) <= (1e-6 * Math.Abs(expected)) + 1e-38, $"tanh({x[i]:R}) = {y[i]:R}, expected {expected:R}");
        }
    }

    [Fact]
    public void A_short_span_and_an_in_place_call_give_the_same_values_as_a_long_one()
    {
        float[] x = [-3f, -0.1f, 0.05f, 0.7f, 2.5f];
        var whole = new float[8];
        var padded = new float[8];
        x.CopyTo(padded, 0);
        FastMath.Tanh(padded, whole);

        var inPlace = x.ToArray();
        FastMath.Tanh(inPlace, inPlace);

        Assert.Equal(whole[..5], inPlace);
    }
}
