using Cluster.Layers;
using Cluster.Tensors;

namespace Cluster.Tests.Layers;

/// <summary>
/// Conv2D works through the batch a group of images at a time and splits the images over the
/// threads; whatever the grouping, its output and gradients must equal a direct convolution.
/// </summary>
public sealed class Conv2DGroupingTests
{
    [Theory]
    // 80 KiB of scratch per image: groups of 12, so 29 images make groups of 12, 12 and 5 on one
    // thread and 12+3 and 12+2 on two.
    [InlineData(8, 16, 8, 3, 1, 1, 29, 1, 12)]
    [InlineData(8, 16, 8, 3, 1, 1, 29, 2, 12)]
    // A batch smaller than a group: the group shrinks to the batch.
    [InlineData(8, 16, 8, 3, 1, 1, 5, 2, 5)]
    // 640 KiB per image: one image per group, whose GEMM writes straight into the output.
    [InlineData(16, 32, 16, 3, 1, 1, 3, 1, 1)]
    [InlineData(16, 32, 16, 3, 1, 1, 3, 2, 1)]
    // Stride 2 and a 1×1 projection with stride 2 (unfolded); a 1×1 stride-1 convolution over
    // 16×16 images (multiplied in place, one image at a time) and over 10×10 ones (grouped).
    [InlineData(3, 11, 4, 3, 2, 1, 7, 2, 7)]
    [InlineData(6, 10, 5, 1, 2, 0, 7, 2, 7)]
    [InlineData(6, 16, 5, 1, 1, 0, 7, 1, 1)]
    [InlineData(6, 16, 5, 1, 1, 0, 7, 2, 1)]
    [InlineData(6, 10, 5, 1, 1, 0, 7, 2, 7)]
    // More threads than images.
    [InlineData(2, 6, 3, 3, 1, 0, 1, 2, 1)]
    public void GroupedConvolutionEqualsDirectConvolution(int channels, int size, int filters, int kernel, int stride, int padding, int batch, int threads, int groupSize)
    {
        using var team = new ThreadTeam(threads);
        var conv = new Conv2D(filters, kernel, stride, padding) { Team = team };
        conv.Build([channels, size, size]);
        var random = new SeededRandom(7);
        var weights = conv.Parameters.Select(p => Tensor.Zeros(p.Shape)).ToArray();
        var gradients = conv.Parameters.Select(p => Tensor.Zeros(p.Shape)).ToArray();
        Fill(weights[0], random);
        Fill(weights[1], random);
        conv.Bind(weights, gradients);
        conv.Allocate(batch);
        Assert.Equal(groupSize, conv.GroupSize);
        var g = new ConvGeometry(channels, size, size, kernel, kernel, stride, padding);
        var x = Tensor.Zeros(batch, channels, size, size);
        var y = Tensor.Zeros(batch, filters, g.OutHeight, g.OutWidth);
        var dy = Tensor.Zeros(batch, filters, g.OutHeight, g.OutWidth);
        var dx = Tensor.Zeros(batch, channels, size, size);
        Fill(x, random);
        Fill(dy, random);
        dx.Span.Fill(float.NaN);
        gradients[0].Span.Fill(0.5f);

        conv.Forward(x, y, training: true);
        conv.Backward(x, y, dy, dx);

        var (expectedY, expectedDw, expectedDb, expectedDx) = Direct(g, filters, batch, x, weights[0], weights[1], dy);
        AssertClose(expectedY, y.Span);
        AssertClose(expectedDw.Select(v => v + 0.5).ToArray(), gradients[0].Span);
        AssertClose(expectedDb, gradients[1].Span);
        AssertClose(expectedDx, dx.Span);
    }

    private static void Fill(Tensor t, SeededRandom random)
    {
        foreach (ref float v in t.Span)
        {
            v = random.NextGaussian();
        }
    }

    private static void AssertClose(double[] expected, Span<float> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4 * (1 + Math.Abs(expected[i])), $"element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }

    /// <summary>The convolution and its gradients by the textbook loops, in double precision.</summary>
    private static (double[] Y, double[] Dw, double[] Db, double[] Dx) Direct(ConvGeometry g, int filters, int batch, Tensor x, Tensor w, Tensor b, Tensor dy)
    {
        int oh = g.OutHeight, ow = g.OutWidth, k = g.KernelHeight;
        var y = new double[batch * filters * oh * ow];
        var dw = new double[w.Length];
        var db = new double[filters];
        var dx = new double[x.Length];
        for (int n = 0; n < batch; n++)
        {
            for (int co = 0; co < filters; co++)
            {
                for (int oy = 0; oy < oh; oy++)
                {
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int o = ((n * filters + co) * oh + oy) * ow + ox;
                        double sum = b.Span[co], grad = dy.Span[o];
                        db[co] += grad;
                        for (int c = 0; c < g.Channels; c++)
                        {
                            for (int ki = 0; ki < k; ki++)
                            {
                                for (int kj = 0; kj < k; kj++)
                                {
                                    int iy = oy * g.Stride - g.Padding + ki, ix = ox * g.Stride - g.Padding + kj;
                                    if ((uint)iy >= (uint)g.Height || (uint)ix >= (uint)g.Width)
                                    {
                                        continue;
                                    }
                                    int xi = ((n * g.Channels + c) * g.Height + iy) * g.Width + ix;
                                    int wi = ((co * g.Channels + c) * k + ki) * k + kj;
                                    sum += w.Span[wi] * (double)x.Span[xi];
                                    dw[wi] += grad * x.Span[xi];
                                    dx[xi] += grad * w.Span[wi];
                                }
                            }
                        }
                        y[o] = sum;
                    }
                }
            }
        }
        return (y, dw, db, dx);
    }
}
