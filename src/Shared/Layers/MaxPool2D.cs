using System.Runtime.Intrinsics;

namespace Cluster.Layers;

/// <summary>
/// Max pooling. Forward records which input cell won each window; backward routes each output
/// gradient to that cell alone (ties go to the first cell in row-major order, as in PyTorch).
/// </summary>
public sealed class MaxPool2D(int size, int? stride = null, int padding = 0) : Pool2D(size, stride, padding)
{
    private int[] _argmax = [];

    /// <inheritdoc/>
    public override string Kind => "maxpool2d";

    /// <inheritdoc/>
    public override void Allocate(int maxBatch)
    {
        int needed = maxBatch * Geometry.Channels * Geometry.OutPlane;
        if (_argmax.Length < needed)
        {
            _argmax = new int[needed];
        }
    }

    /// <inheritdoc/>
    protected override void ForwardPlane(int plane, ReadOnlySpan<float> input, Span<float> output)
    {
        var g = Geometry;
        int ow = g.OutWidth;
        var winners = _argmax.AsSpan(plane * g.OutPlane, g.OutPlane);
        if (g.Padding == 0 && g.KernelHeight == 2 && g.Stride == 2)
        {
            ForwardPlane2x2(input, output, winners);
            return;
        }
        for (int oy = 0; oy < g.OutHeight; oy++)
        {
            for (int ox = 0; ox < ow; ox++)
            {
                var (y0, y1, x0, x1) = Window(oy, ox);
                int best = y0 * g.Width + x0;
                float max = input[best];
                for (int iy = y0; iy < y1; iy++)
                {
                    for (int ix = x0; ix < x1; ix++)
                    {
                        if (input[iy * g.Width + ix] > max)
                        {
                            max = input[iy * g.Width + ix];
                            best = iy * g.Width + ix;
                        }
                    }
                }
                output[oy * ow + ox] = max;
                winners[oy * ow + ox] = best;
            }
        }
    }

    /// <summary>
    /// The common 2×2, stride-2 window without branches: eight windows at a time, the four cells
    /// of each split into vectors by de-interleaving even and odd columns, the winner picked by
    /// masks in reverse order so that ties go to the first cell. (A branchy max mispredicts on
    /// about every other cell of real activations.)
    /// </summary>
    private void ForwardPlane2x2(ReadOnlySpan<float> input, Span<float> output, Span<int> winners)
    {
        var g = Geometry;
        int ow = g.OutWidth, width = g.Width;
        var evenOdd = Vector256.Create(0, 2, 4, 6, 1, 3, 5, 7);
        var laneOffsets = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
        for (int oy = 0; oy < g.OutHeight; oy++)
        {
            int row0 = 2 * oy * width;
            var top = input.Slice(row0, width);
            var bottom = input.Slice(row0 + width, width);
            var outRow = output.Slice(oy * ow, ow);
            var winRow = winners.Slice(oy * ow, ow);
            int ox = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                for (; 2 * ox + 16 <= width && ox + 8 <= ow; ox += 8)
                {
                    (var a, var b) = Deinterleave(Vector256.Create(top.Slice(2 * ox, 8)), Vector256.Create(top.Slice(2 * ox + 8, 8)), evenOdd);
                    (var c, var d) = Deinterleave(Vector256.Create(bottom.Slice(2 * ox, 8)), Vector256.Create(bottom.Slice(2 * ox + 8, 8)), evenOdd);
                    var max = Vector256.Max(Vector256.Max(a, b), Vector256.Max(c, d));
                    var cellA = Vector256.Create(row0 + 2 * ox) + laneOffsets;
                    var index = Vector256.ConditionalSelect(Vector256.Equals(c, max).AsInt32(), cellA + Vector256.Create(width), cellA + Vector256.Create(width + 1));
                    index = Vector256.ConditionalSelect(Vector256.Equals(b, max).AsInt32(), cellA + Vector256<int>.One, index);
                    index = Vector256.ConditionalSelect(Vector256.Equals(a, max).AsInt32(), cellA, index);
                    max.CopyTo(outRow.Slice(ox, 8));
                    index.CopyTo(winRow.Slice(ox, 8));
                }
            }
            for (; ox < ow; ox++)
            {
                int i0 = row0 + 2 * ox, best = i0;
                float max = input[i0];
                if (input[i0 + 1] > max) { max = input[i0 + 1]; best = i0 + 1; }
                int i2 = i0 + width;
                if (input[i2] > max) { max = input[i2]; best = i2; }
                if (input[i2 + 1] > max) { max = input[i2 + 1]; best = i2 + 1; }
                outRow[ox] = max;
                winRow[ox] = best;
            }
        }
    }

    private static (Vector256<float> Even, Vector256<float> Odd) Deinterleave(Vector256<float> lo, Vector256<float> hi, Vector256<int> evenOdd)
    {
        var l = Vector256.Shuffle(lo, evenOdd);
        var h = Vector256.Shuffle(hi, evenOdd);
        return (Vector256.Create(l.GetLower(), h.GetLower()), Vector256.Create(l.GetUpper(), h.GetUpper()));
    }

    /// <inheritdoc/>
    protected override void BackwardPlane(int plane, ReadOnlySpan<float> outputGrad, Span<float> inputGrad)
    {
        var winners = _argmax.AsSpan(plane * Geometry.OutPlane, Geometry.OutPlane);
        for (int i = 0; i < winners.Length; i++)
        {
            inputGrad[winners[i]] += outputGrad[i];
        }
    }
}
