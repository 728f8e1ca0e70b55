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
                var (y0, y1, x0, x1) = Window(oy, ox);
                float sum = 0f;
                for (int iy = y0; iy < y1; iy++)
                {
                    sum += TensorPrimitives.Sum(input.Slice(iy * g.Width + x0, x1 - x0));
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
                var (y0, y1, x0, x1) = Window(oy, ox);
                float share = outputGrad[oy * g.OutWidth + ox] * scale;
                for (int iy = y0; iy < y1; iy++)
                {
                    var row = inputGrad.Slice(iy * g.Width + x0, x1 - x0);
                    TensorPrimitives.Add(row, share, row);
                }
            }
        }
    }
}
