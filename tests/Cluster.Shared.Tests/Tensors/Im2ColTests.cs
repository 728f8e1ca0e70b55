using Cluster.Tensors;

namespace Cluster.Tests.Tensors;

public sealed class Im2ColTests
{
    /// <summary>Square, odd and wide images; the 13-wide one gives rows long enough for the vector copies.</summary>
    private static readonly (int C, int H, int W)[] Images = [(2, 5, 5), (3, 6, 7), (2, 9, 13)];

    public static TheoryData<int, int, int> Windows()
    {
        var data = new TheoryData<int, int, int>();
        foreach (int kernel in new[] { 1, 2, 3 })
        {
            foreach (int stride in new[] { 1, 2 })
            {
                foreach (int pad in new[] { 0, 1 })
                {
                    data.Add(kernel, stride, pad);
                }
            }
        }
        return data;
    }

    [Fact]
    public void Unfold_lays_out_each_kernel_tap_as_a_row()
    {
        var g = new ConvGeometry(1, 3, 3, 2, 2, Stride: 1, Padding: 0);
        float[] image = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        float[] cols = new float[4 * 4];

        Im2Col.Unfold(g, image, cols, ldCols: 4, column0: 0);

        Assert.Equal([1, 2, 4, 5, /**/ 2, 3, 5, 6, /**/ 4, 5, 7, 8, /**/ 5, 6, 8, 9], cols);
    }

    [Fact]
    public void Unfold_writes_zeros_where_the_window_covers_padding()
    {
        var g = new ConvGeometry(1, 2, 2, 3, 3, Stride: 1, Padding: 1);
        float[] image = [1, 2, 3, 4];
        float[] cols = new float[9 * 4];
        Array.Fill(cols, float.NaN);

        Im2Col.Unfold(g, image, cols, ldCols: 4, column0: 0);

        // Tap (0, 0) sees the image only from output (1, 1); the centre tap sees every pixel.
        Assert.Equal([0, 0, 0, 1], cols.AsSpan(0, 4).ToArray());
        Assert.Equal([1, 2, 3, 4], cols.AsSpan(4 * 4, 4).ToArray());
        Assert.Equal([4, 0, 0, 0], cols.AsSpan(8 * 4, 4).ToArray());
    }

    [Theory]
    [MemberData(nameof(Windows))]
    [InlineData(5, 1, 2)]
    public void Unfold_then_a_product_with_the_weights_equals_a_direct_convolution(int kernel, int stride, int pad)
    {
        const int Batch = 2, Filters = 3, Spare = 3;
        foreach (var (channels, height, width) in Images)
        {
            var g = new ConvGeometry(channels, height, width, kernel, kernel, stride, pad);
            var random = new Random((kernel * 100) + (stride * 10) + pad);
            int plane = g.OutPlane, ld = (Batch * plane) + Spare;
            float[] images = Random(random, Batch * g.InputSize);
            float[] weights = Random(random, Filters * g.PatchSize);
            float[] cols = new float[g.PatchSize * ld];
            Array.Fill(cols, float.NaN);

            for (int n = 0; n < Batch; n++)
            {
                Im2Col.Unfold(g, images.AsSpan(n * g.InputSize, g.InputSize), cols, ld, n * plane);
            }

            for (int n = 0; n < Batch; n++)
            {
                for (int co = 0; co < Filters; co++)
                {
                    for (int oy = 0; oy < g.OutHeight; oy++)
                    {
                        for (int ox = 0; ox < g.OutWidth; ox++)
                        {
                            int column = (n * plane) + (oy * g.OutWidth) + ox;
                            double viaColumns = 0, direct = 0;
                            for (int row = 0; row < g.PatchSize; row++)
                            {
                                viaColumns += (double)weights[(co * g.PatchSize) + row] * cols[(row * ld) + column];
                            }
                            for (int c = 0; c < channels; c++)
                            {
                                for (int ki = 0; ki < kernel; ki++)
                                {
                                    for (int kj = 0; kj < kernel; kj++)
                                    {
                                        int iy = (oy * stride) - pad + ki, ix = (ox * stride) - pad + kj;
                                        if (iy >= 0 && iy < height && ix >= 0 && ix < width)
                                        {
                                            double w = weights[(co * g.PatchSize) + (((c * kernel) + ki) * kernel) + kj];
                                            direct += w * images[(n * g.InputSize) + (((c * height) + iy) * width) + ix];
                                        }
                                    }
                                }
                            }
                            Assert.True(Math.Abs(viaColumns - direct) <= 1e-9, $"{g} image {n} filter {co} at ({oy}, {ox}): {viaColumns} via im2col, {direct} direct");
                        }
                    }
                }
            }
            for (int row = 0; row < g.PatchSize; row++)
            {
                Assert.All(cols.AsSpan((row * ld) + (Batch * plane), Spare).ToArray(), value => Assert.True(float.IsNaN(value), $"{g}: Unfold wrote past its columns"));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Windows))]
    public void Fold_is_the_adjoint_of_Unfold(int kernel, int stride, int pad)
    {
        foreach (var (channels, height, width) in Images)
        {
            var g = new ConvGeometry(channels, height, width, kernel, kernel, stride, pad);
            var random = new Random((kernel * 100) + (stride * 10) + pad + 1);
            int plane = g.OutPlane, ld = (3 * plane) + 1, column0 = plane;
            float[] x = Random(random, g.InputSize);
            float[] c = Random(random, g.PatchSize * ld);
            float[] unfolded = new float[g.PatchSize * ld];
            float[] start = Random(random, g.InputSize);
            float[] folded = (float[])start.Clone();

            Im2Col.Unfold(g, x, unfolded, ld, column0);
            Im2Col.Fold(g, c, ld, column0, folded);

            double left = 0, leftScale = 0;
            for (int row = 0; row < g.PatchSize; row++)
            {
                for (int p = 0; p < plane; p++)
                {
                    int index = (row * ld) + column0 + p;
                    left += (double)unfolded[index] * c[index];
                    leftScale += Math.Abs((double)unfolded[index] * c[index]);
                }
            }
            // Fold adds onto what the image held.
            double right = 0;
            for (int i = 0; i < g.InputSize; i++)
            {
                right += x[i] * ((double)folded[i] - start[i]);
            }
            Assert.True(Math.Abs(left - right) <= 1e-5 * Math.Max(1, leftScale), $"{g}: ⟨Unfold x, c⟩ = {left} but ⟨x, Fold c⟩ = {right}");
        }
    }

    /// <summary>The scratch fold (one long pass per patch row for stride-1 "same" windows) adds exactly what Fold adds.</summary>
    [Theory]
    [MemberData(nameof(Windows))]
    [InlineData(5, 1, 2)]
    public void FoldScratch_adds_what_Fold_adds(int kernel, int stride, int pad)
    {
        foreach (var (channels, height, width) in Images)
        {
            var g = new ConvGeometry(channels, height, width, kernel, kernel, stride, pad);
            if (g.OutHeight < 1 || g.OutWidth < 1)
            {
                continue;
            }
            var random = new Random((kernel * 100) + (stride * 10) + pad + 2);
            int plane = g.OutPlane, ld = (2 * plane) + 3, column0 = plane + 1;
            float[] c = Random(random, g.PatchSize * ld);
            float[] start = Random(random, g.InputSize);
            float[] expected = (float[])start.Clone();
            float[] actual = (float[])start.Clone();

            Im2Col.Fold(g, c, ld, column0, expected);
            Im2Col.FoldScratch(g, c, ld, column0, actual);

            for (int i = 0; i < g.InputSize; i++)
            {
                Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i])), $"{g}: element {i} is {actual[i]}, Fold gives {expected[i]}");
            }
        }
    }

    [Fact]
    public void Buffers_smaller_than_the_geometry_are_rejected()
    {
        var g = new ConvGeometry(2, 5, 5, 3, 3, Stride: 1, Padding: 0);
        float[] image = new float[g.InputSize];
        float[] cols = new float[g.PatchSize * g.OutPlane];

        Assert.Throws<ArgumentException>(() => Im2Col.Unfold(g, image.AsSpan(1), cols, g.OutPlane, 0));
        Assert.Throws<ArgumentException>(() => Im2Col.Unfold(g, image, cols, g.OutPlane, 1));
        Assert.Throws<ArgumentException>(() => Im2Col.Fold(g, cols.AsSpan(1), g.OutPlane, 0, image));
        Assert.Throws<ArgumentException>(() => Im2Col.Fold(g, cols, g.OutPlane, 0, image.AsSpan(1)));
    }

    private static float[] Random(Random random, int length)
    {
        float[] values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = (float)((random.NextDouble() * 2) - 1);
        }
        return values;
    }
}
