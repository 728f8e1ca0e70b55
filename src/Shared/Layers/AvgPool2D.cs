namespace Cluster.Layers;

/// <summary>
/// Average pooling: each output is the mean of its window, padding cells counted as zeros
/// (PyTorch's default count_include_pad); backward spreads each output gradient evenly.
/// </summary>
public sealed class AvgPool2D(int size, int? stride = null, int padding = 0) : Pool2D(size, stride, padding)
{
    /// <inheritdoc/>
    public override string Kind => "avgpool2d";

    /// <inheritdoc/>
    protected override void ForwardPlane(int plane, ReadOnlySpan<float> input, Span<float> output)
    {
        var g = Geometry;
        float scale = 1f / (g.KernelHeight * g.KernelWidth);
        for (int oy = 0; oy < g.OutHeight; oy++)
        {
            for (int ox = 0; ox < g.OutWidth; ox++)
            {
                float sum = 0f;
                for (int ky = 0; ky < g.KernelHeight; ky++)
                {
                    int iy = oy * g.Stride - g.Padding + ky;
                    if ((uint)iy >= (uint)g.Height)
                    {
                        continue;
                    }
                    for (int kx = 0; kx < g.KernelWidth; kx++)
                    {
                        int ix = ox * g.Stride - g.Padding + kx;
                        if ((uint)ix < (uint)g.Width)
                        {
                            sum += input[iy * g.Width + ix];
                        }
                    }
                }
                output[oy * g.OutWidth + ox] = sum * scale;
            }
        }
    }

    /// <inheritdoc/>
    protected override void BackwardPlane(int plane, ReadOnlySpan<float> outputGrad, Span<float> inputGrad)
    {
        var g = Geometry;
        float scale = 1f / (g.KernelHeight * g.KernelWidth);
        for (int oy = 0; oy < g.OutHeight; oy++)
        {
            for (int ox = 0; ox < g.OutWidth; ox++)
            {
                float share = outputGrad[oy * g.OutWidth + ox] * scale;
                for (int ky = 0; ky < g.KernelHeight; ky++)
                {
                    int iy = oy * g.Stride - g.Padding + ky;
                    if ((uint)iy >= (uint)g.Height)
                    {
                        continue;
                    }
                    for (int kx = 0; kx < g.KernelWidth; kx++)
                    {
                        int ix = ox * g.Stride - g.Padding + kx;
                        if ((uint)ix < (uint)g.Width)
                        {
                            inputGrad[iy * g.Width + ix] += share;
                        }
                    }
                }
            }
        }
    }
}
