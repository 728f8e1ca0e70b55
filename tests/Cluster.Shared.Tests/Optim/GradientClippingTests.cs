using Cluster.Optim;

namespace Cluster.Tests.Optim;

public sealed class GradientClippingTests
{
    [Fact]
    public void A_norm_over_the_max_is_scaled_down_to_it_and_returned()
    {
        float[] gradients = [3f, 4f];

        float norm = GradientClipping.ClipByGlobalNorm(gradients, 1f);

        Assert.Equal(5f, norm, 1e-6f);
        Assert.Equal(0.6f, gradients[0], 1e-6f);
        Assert.Equal(0.8f, gradients[1], 1e-6f);
    }

    [Fact]
    public void The_clipped_buffer_has_the_max_norm_across_the_whole_buffer()
    {
        float[] gradients = [0.5f, -2f, 0.1f, 1f, -0.3f, 0.02f, 3f, -1f, 0.7f, 0.5f, -0.6f, 4f, -0.25f];
        double before = Math.Sqrt(gradients.Sum(g => (double)g * g));
        float[] original = (float[])gradients.Clone();

        float norm = GradientClipping.ClipByGlobalNorm(gradients, 2.5f);

        Assert.Equal(before, norm, 1e-5);
        Assert.Equal(2.5, Math.Sqrt(gradients.Sum(g => (double)g * g)), 1e-5);
        for (int i = 0; i < gradients.Length; i++)
        {
            Assert.Equal(original[i] * 2.5 / before, gradients[i], 1e-6); // one common factor, direction kept
        }
    }

    [Theory]
    [InlineData(1f)]
    [InlineData(0.5f)] // exactly at the max: unchanged
    [InlineData(float.PositiveInfinity)]
    public void A_norm_at_or_under_the_max_changes_nothing(float maxNorm)
    {
        float[] gradients = [0.3f, -0.4f];

        float norm = GradientClipping.ClipByGlobalNorm(gradients, maxNorm);

        Assert.Equal(0.5f, norm, 1e-7f);
        Assert.Equal([0.3f, -0.4f], gradients);
    }

    [Fact]
    public void A_nan_norm_is_returned_and_leaves_the_gradients_alone()
    {
        float[] gradients = [float.NaN, 1f];

        Assert.True(float.IsNaN(GradientClipping.ClipByGlobalNorm(gradients, 1f)));
        Assert.Equal(1f, gradients[1]);
    }

    [Fact]
    public void An_empty_buffer_has_norm_zero()
    {
        Assert.Equal(0f, GradientClipping.ClipByGlobalNorm([], 1f));
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(-1f)]
    [InlineData(float.NaN)]
    public void A_max_norm_that_is_not_positive_is_rejected_naming_it(float maxNorm)
    {
        float[] gradients = [1f, 2f];

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => GradientClipping.ClipByGlobalNorm(gradients, maxNorm));

        Assert.Contains($"max gradient norm {maxNorm} ", error.Message, StringComparison.Ordinal);
        Assert.Equal([1f, 2f], gradients);
    }
}
