using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// What max and average pooling share: the window geometry, shape inference, and running the
/// per-plane work of a batch over the team (one plane is one channel of one image).
/// </summary>
public abstract class Pool2D : Layer
{
    private Tensor? _x, _y, _dy, _dx;
    private readonly Action<int, int> _forward, _backward;

    /// <summary>Creates a pooling window of <paramref name="size"/>; the stride defaults to the size.</summary>
    protected Pool2D(int size, int? stride, int padding)
    {
        int s = stride ?? size;
        if (size < 1 || s < 1 || padding < 0 || padding * 2 > size)
        {
            throw new ModelSpecException($"pooling needs size ≥ 1, stride ≥ 1 and 0 ≤ pad ≤ size/2; got size={size} stride={s} pad={padding}");
        }
        Size = size;
        Stride = s;
        Padding = padding;
        _forward = ForwardPlanes;
        _backward = BackwardPlanes;
    }

    /// <summary>Window height and width.</summary>
    public int Size { get; }

    /// <summary>Step between windows (default: the size).</summary>
    public int Stride { get; }

    /// <summary>Padding on each side (ignored cells, not zeros, for max pooling).</summary>
    public int Padding { get; }

    /// <summary>The window geometry (valid once built).</summary>
    protected ConvGeometry Geometry { get; private set; }

    /// <summary>The input rows [Y0, Y1) and columns [X0, X1) under output cell (oy, ox), clipped to the image.</summary>
    protected (int Y0, int Y1, int X0, int X1) Window(int oy, int ox)
    {
        var g = Geometry;
        int y = oy * g.Stride - g.Padding, x = ox * g.Stride - g.Padding;
        return (Math.Max(0, y), Math.Min(g.Height, y + g.KernelHeight), Math.Max(0, x), Math.Min(g.Width, x + g.KernelWidth));
    }

    /// <inheritdoc/>
    public override string Spec => $"{Kind} {Size}" + (Stride != Size ? $" stride={Stride}" : "") + (Padding != 0 ? $" pad={Padding}" : "");

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input)
    {
        if (input.Length != 3)
        {
            throw new ModelSpecException($"{Kind} takes C×H×W images but gets shape {Tensor.ShapeText(input)}");
        }
        Geometry = new ConvGeometry(input[0], input[1], input[2], Size, Size, Stride, Padding);
        if (input[1] + 2 * Padding < Size || input[2] + 2 * Padding < Size)
        {
            throw new ModelSpecException($"{Kind} window {Size} is larger than its input {input[1]}×{input[2]}");
        }
        return [input[0], Geometry.OutHeight, Geometry.OutWidth];
    }

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training)
    {
        _x = x;
        _y = y;
        Team.For(x.BatchSize * Geometry.Channels, _forward);
    }

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx)
    {
        if (dx is null)
        {
            return;
        }
        _dy = dy;
        _dx = dx;
        Team.For(x.BatchSize * Geometry.Channels, _backward);
    }

    private void ForwardPlanes(int start, int end)
    {
        int inPlane = Geometry.Height * Geometry.Width, outPlane = Geometry.OutPlane;
        for (int plane = start; plane < end; plane++)
        {
            ForwardPlane(plane, _x!.Data.AsSpan(_x.Offset + plane * inPlane, inPlane), _y!.Data.AsSpan(_y.Offset + plane * outPlane, outPlane));
        }
    }

    private void BackwardPlanes(int start, int end)
    {
        int inPlane = Geometry.Height * Geometry.Width, outPlane = Geometry.OutPlane;
        for (int plane = start; plane < end; plane++)
        {
            var dx = _dx!.Data.AsSpan(_dx.Offset + plane * inPlane, inPlane);
            dx.Clear();
            BackwardPlane(plane, _dy!.Data.AsSpan(_dy.Offset + plane * outPlane, outPlane), dx);
        }
    }

    /// <summary>Pools one input plane into one output plane; <paramref name="plane"/> = n·C + c.</summary>
    protected abstract void ForwardPlane(int plane, ReadOnlySpan<float> input, Span<float> output);

    /// <summary>Adds one output plane's gradient onto its (cleared) input-plane gradient.</summary>
    protected abstract void BackwardPlane(int plane, ReadOnlySpan<float> outputGrad, Span<float> inputGrad);
}
