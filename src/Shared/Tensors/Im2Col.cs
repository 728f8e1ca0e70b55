using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Cluster.Tensors;

/// <summary>The geometry of a 2-D convolution or pooling window over one C×H×W image.</summary>
public readonly record struct ConvGeometry(int Channels, int Height, int Width, int KernelHeight, int KernelWidth, int Stride, int Padding)
{
    /// <summary>Output rows: floor((H + 2·pad − kh) / stride) + 1.</summary>
    public int OutHeight => (Height + 2 * Padding - KernelHeight) / Stride + 1;

    /// <summary>Output columns: floor((W + 2·pad − kw) / stride) + 1.</summary>
    public int OutWidth => (Width + 2 * Padding - KernelWidth) / Stride + 1;

    /// <summary>Output positions per channel.</summary>
    public int OutPlane => OutHeight * OutWidth;

    /// <summary>Rows of the patch matrix: C·kh·kw.</summary>
    public int PatchSize => Channels * KernelHeight * KernelWidth;

    /// <summary>Elements of one input image.</summary>
    public int InputSize => Channels * Height * Width;
}

/// <summary>
/// im2col and col2im: unfold an image into a patch matrix so that a convolution becomes one GEMM,
/// and fold a patch-matrix gradient back onto the image. The patch matrix of a whole batch is laid
/// out as [C·kh·kw, B·P] (P output positions per image); image n fills columns n·P .. n·P+P−1,
/// so the GEMM W[Cout, C·kh·kw] · cols gives the output of all images at once.
/// These loops run once per kernel tap and output row, so they work on raw pointers with short
/// vector copies: the span slicing of a plain version cost more than the copying itself.
/// </summary>
public static unsafe class Im2Col
{
    /// <summary>Unfolds one image into columns [<paramref name="column0"/>, +P) of <paramref name="cols"/> (row stride <paramref name="ldCols"/>).</summary>
    public static void Unfold(in ConvGeometry g, ReadOnlySpan<float> image, Span<float> cols, int ldCols, int column0)
    {
        if (image.Length < g.InputSize || cols.Length < (long)(g.PatchSize - 1) * ldCols + column0 + g.OutPlane)
        {
            throw new ArgumentException("im2col buffers are smaller than the geometry needs");
        }
        int oh = g.OutHeight, ow = g.OutWidth;
        fixed (float* imageBase = image)
        fixed (float* colsBase = cols)
        {
            if (g.Stride == 1 && ow == g.Width)
            {
                UnfoldSame(g, imageBase, colsBase, ldCols, column0);
                return;
            }
            for (int c = 0; c < g.Channels; c++)
            {
                float* plane = imageBase + (long)c * g.Height * g.Width;
                for (int ki = 0; ki < g.KernelHeight; ki++)
                {
                    for (int kj = 0; kj < g.KernelWidth; kj++)
                    {
                        int row = (c * g.KernelHeight + ki) * g.KernelWidth + kj;
                        float* dst = colsBase + (long)row * ldCols + column0;
                        int x0 = kj - g.Padding;
                        (int first, int last) = InsideColumns(g, x0);
                        for (int y = 0; y < oh; y++, dst += ow)
                        {
                            int iy = y * g.Stride - g.Padding + ki;
                            if ((uint)iy >= (uint)g.Height)
                            {
                                Clear(dst, ow);
                                continue;
                            }
                            float* src = plane + iy * g.Width + x0;
                            Clear(dst, first);
                            if (g.Stride == 1)
                            {
                                Copy(dst + first, src + first, last - first);
                            }
                            else
                            {
                                for (int x = first; x < last; x++)
                                {
                                    dst[x] = src[x * g.Stride];
                                }
                            }
                            Clear(dst + last, ow - last);
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Unfold of a stride-1 convolution whose output is as wide as its input ("same" padding, as
    /// in every 3×3 pad-1 convolution of a residual block): there a patch row is the image plane
    /// shifted by one offset, so each row is one long copy, and only the taps that fall off the
    /// left or right edge (at most pad per output row) are zeroed afterwards. Row by row copies
    /// of OutWidth floats spent more on loop overhead than on moving the data.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void UnfoldSame(in ConvGeometry g, float* imageBase, float* colsBase, int ldCols, int column0)
    {
        int h = g.Height, w = g.Width, planeSize = h * w;
        for (int c = 0; c < g.Channels; c++)
        {
            float* plane = imageBase + (long)c * planeSize;
            for (int ki = 0; ki < g.KernelHeight; ki++)
            {
                int dy = ki - g.Padding;
                // Output rows y whose input row y + dy lies inside the image.
                int yFirst = Math.Max(0, -dy), yLast = Math.Min(h, h - dy);
                for (int kj = 0; kj < g.KernelWidth; kj++)
                {
                    int dx = kj - g.Padding;
                    float* dst = colsBase + (long)((c * g.KernelHeight + ki) * g.KernelWidth + kj) * ldCols + column0;
                    if (yLast <= yFirst)
                    {
                        Clear(dst, planeSize);
                        continue;
                    }
                    Clear(dst, yFirst * w);
                    Clear(dst + yLast * w, (h - yLast) * w);
                    // dst[y·w + x] = plane[(y + dy)·w + x + dx] for the whole band at once; the
                    // one or two values that would come from outside the plane are edge taps.
                    int from = yFirst * w, to = yLast * w;
                    int source = from + dy * w + dx;
                    int skipFront = Math.Max(0, -source), skipBack = Math.Max(0, source + (to - from) - planeSize);
                    Copy(dst + from + skipFront, plane + source + skipFront, to - from - skipFront - skipBack);
                    (int first, int last) = InsideColumns(g, dx);
                    if (first > 0 || last < w)
                    {
                        for (int y = yFirst; y < yLast; y++)
                        {
                            float* r = dst + y * w;
                            Clear(r, first);
                            Clear(r + last, w - last);
                        }
                    }
                }
            }
        }
    }

    /// <summary>Adds columns [<paramref name="column0"/>, +P) of <paramref name="cols"/> back onto one image gradient (which the caller cleared).</summary>
    public static void Fold(in ConvGeometry g, ReadOnlySpan<float> cols, int ldCols, int column0, Span<float> image)
    {
        if (image.Length < g.InputSize || cols.Length < (long)(g.PatchSize - 1) * ldCols + column0 + g.OutPlane)
        {
            throw new ArgumentException("col2im buffers are smaller than the geometry needs");
        }
        int oh = g.OutHeight, ow = g.OutWidth;
        fixed (float* imageBase = image)
        fixed (float* colsBase = cols)
        {
            for (int c = 0; c < g.Channels; c++)
            {
                float* plane = imageBase + (long)c * g.Height * g.Width;
                for (int ki = 0; ki < g.KernelHeight; ki++)
                {
                    for (int kj = 0; kj < g.KernelWidth; kj++)
                    {
                        int row = (c * g.KernelHeight + ki) * g.KernelWidth + kj;
                        float* src = colsBase + (long)row * ldCols + column0;
                        int x0 = kj - g.Padding;
                        (int first, int last) = InsideColumns(g, x0);
                        for (int y = 0; y < oh; y++, src += ow)
                        {
                            int iy = y * g.Stride - g.Padding + ki;
                            if ((uint)iy >= (uint)g.Height)
                            {
                                continue;
                            }
                            float* dst = plane + iy * g.Width + x0;
                            if (g.Stride == 1)
                            {
                                Add(dst + first, src + first, last - first);
                            }
                            else
                            {
                                for (int x = first; x < last; x++)
                                {
                                    dst[x * g.Stride] += src[x];
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// <see cref="Fold"/> for a patch-matrix gradient that is scratch: for a stride-1 "same"
    /// convolution it first zeroes the taps that fall off the left or right edge, so that each
    /// patch row can then be added onto the shifted image plane in one long pass (see
    /// <see cref="UnfoldSame"/>); other geometries fold as usual and leave it untouched.
    /// </summary>
    internal static void FoldScratch(in ConvGeometry g, Span<float> cols, int ldCols, int column0, Span<float> image)
    {
        if (g.Stride != 1 || g.OutWidth != g.Width)
        {
            Fold(g, cols, ldCols, column0, image);
            return;
        }
        if (image.Length < g.InputSize || cols.Length < (long)(g.PatchSize - 1) * ldCols + column0 + g.OutPlane)
        {
            throw new ArgumentException("col2im buffers are smaller than the geometry needs");
        }
        fixed (float* imageBase = image)
        fixed (float* colsBase = cols)
        {
            FoldSame(g, colsBase, ldCols, column0, imageBase);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FoldSame(in ConvGeometry g, float* colsBase, int ldCols, int column0, float* imageBase)
    {
        int h = g.Height, w = g.Width, planeSize = h * w;
        for (int c = 0; c < g.Channels; c++)
        {
            float* plane = imageBase + (long)c * planeSize;
            for (int ki = 0; ki < g.KernelHeight; ki++)
            {
                int dy = ki - g.Padding;
                int yFirst = Math.Max(0, -dy), yLast = Math.Min(h, h - dy);
                if (yLast <= yFirst)
                {
                    continue;
                }
                for (int kj = 0; kj < g.KernelWidth; kj++)
                {
                    int dx = kj - g.Padding;
                    float* src = colsBase + (long)((c * g.KernelHeight + ki) * g.KernelWidth + kj) * ldCols + column0;
                    (int first, int last) = InsideColumns(g, dx);
                    if (first > 0 || last < w)
                    {
                        for (int y = yFirst; y < yLast; y++)
                        {
                            float* r = src + y * w;
                            Clear(r, first);
                            Clear(r + last, w - last);
                        }
                    }
                    int from = yFirst * w, to = yLast * w;
                    int target = from + dy * w + dx;
                    int skipFront = Math.Max(0, -target), skipBack = Math.Max(0, target + (to - from) - planeSize);
                    Add(plane + target + skipFront, src + from + skipFront, to - from - skipFront - skipBack);
                }
            }
        }
    }

    /// <summary>The output columns [first, last) whose tap at column offset x0 falls inside the image.</summary>
    private static (int First, int Last) InsideColumns(in ConvGeometry g, int x0)
    {
        int ow = g.OutWidth;
        int first = Math.Min(ow, Math.Max(0, (-x0 + g.Stride - 1) / g.Stride));
        return (first, Math.Max(first, Math.Min(ow, (g.Width - x0 + g.Stride - 1) / g.Stride)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Clear(float* dst, int n)
    {
        for (int i = 0; i < n; i++)
        {
            dst[i] = 0f;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Copy(float* dst, float* src, int n)
    {
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            Vector256.Store(Vector256.Load(src + i), dst + i);
        }
        if (i <= n - 4)
        {
            Vector128.Store(Vector128.Load(src + i), dst + i);
            i += 4;
        }
        for (; i < n; i++)
        {
            dst[i] = src[i];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(float* dst, float* src, int n)
    {
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            Vector256.Store(Vector256.Load(dst + i) + Vector256.Load(src + i), dst + i);
        }
        if (i <= n - 4)
        {
            Vector128.Store(Vector128.Load(dst + i) + Vector128.Load(src + i), dst + i);
            i += 4;
        }
        for (; i < n; i++)
        {
            dst[i] += src[i];
        }
    }
}
