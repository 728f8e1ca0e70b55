using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// 2-D convolution over NCHW images, by im2col and one GEMM for the whole batch:
/// the batch is unfolded into a patch matrix cols[C·kh·kw, B·P], then Y' = W·cols gives every
/// output position of every image, and Y' is scattered into NCHW with the bias added.
/// Backward: dW += dY'·colsᵀ, db += Σ dY', dcols = Wᵀ·dY' folded back by col2im.
/// W has shape [out, in, kh, kw] as in PyTorch.
/// </summary>
public sealed class Conv2D : Layer
{
    private float[] _cols = [];
    private float[] _outT = [];
    private ConvGeometry _geometry;
    private Tensor? _x, _y, _dy, _dx;
    private readonly Action<int, int> _unfold, _scatter, _gather, _fold;

    /// <summary>Creates a convolution with <paramref name="filters"/> output channels and a square kernel.</summary>
    public Conv2D(int filters, int kernel, int stride = 1, int padding = 0, Initializer init = Initializer.He)
    {
        if (filters < 1 || kernel < 1 || stride < 1 || padding < 0)
        {
            throw new ModelSpecException($"conv2d needs filters ≥ 1, kernel ≥ 1, stride ≥ 1 and pad ≥ 0; got filters={filters} kernel={kernel} stride={stride} pad={padding}");
        }
        Filters = filters;
        KernelSize = kernel;
        Stride = stride;
        Padding = padding;
        Init = init;
        _unfold = Unfold;
        _scatter = Scatter;
        _gather = Gather;
        _fold = Fold;
    }

    /// <summary>Output channels.</summary>
    public int Filters { get; }

    /// <summary>Kernel height and width.</summary>
    public int KernelSize { get; }

    /// <summary>Step between windows.</summary>
    public int Stride { get; }

    /// <summary>Zero padding on each side.</summary>
    public int Padding { get; }

    /// <summary>How the weights start.</summary>
    public Initializer Init { get; }

    /// <inheritdoc/>
    public override string Kind => "conv2d";

    /// <inheritdoc/>
    public override string Spec =>
        $"conv2d {Filters} {KernelSize}" + (Stride != 1 ? $" stride={Stride}" : "") + (Padding != 0 ? $" pad={Padding}" : "")
        + (Init != Initializer.He ? $" init={Init.ToString().ToLowerInvariant()}" : "");

    /// <inheritdoc/>
    public override IReadOnlyList<ParameterSpec> Parameters =>
    [
        new("weight", [Filters, InputShape[0], KernelSize, KernelSize], Init, _geometry.PatchSize, Filters * KernelSize * KernelSize, Decays: true),
        new("bias", [Filters], Initializer.Zeros, _geometry.PatchSize, Filters, Decays: false),
    ];

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input)
    {
        if (input.Length != 3)
        {
            throw new ModelSpecException($"conv2d takes C×H×W images but gets shape {Tensor.ShapeText(input)}");
        }
        _geometry = new ConvGeometry(input[0], input[1], input[2], KernelSize, KernelSize, Stride, Padding);
        if (input[1] + 2 * Padding < KernelSize || input[2] + 2 * Padding < KernelSize)
        {
            throw new ModelSpecException($"conv2d kernel {KernelSize} is larger than its padded input {input[1]}×{input[2]} (pad={Padding})");
        }
        return [Filters, _geometry.OutHeight, _geometry.OutWidth];
    }

    /// <inheritdoc/>
    public override void Allocate(int maxBatch)
    {
        long columns = (long)maxBatch * _geometry.OutPlane;
        if (_cols.Length < _geometry.PatchSize * columns)
        {
            _cols = new float[checked((int)(_geometry.PatchSize * columns))];
            _outT = new float[checked((int)(Filters * columns))];
        }
    }

    private int Columns => _x!.BatchSize * _geometry.OutPlane;

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training)
    {
        _x = x;
        _y = y;
        int columns = x.BatchSize * _geometry.OutPlane;
        Team.For(x.BatchSize, _unfold);
        Gemm.Multiply(false, false, Filters, columns, _geometry.PatchSize, Weights[0].Span, _geometry.PatchSize, _cols, columns, _outT, columns, accumulate: false, Team);
        Team.For(x.BatchSize, _scatter);
    }

    private void Unfold(int start, int end)
    {
        for (int n = start; n < end; n++)
        {
            Im2Col.Unfold(_geometry, _x!.Sample(n), _cols, Columns, n * _geometry.OutPlane);
        }
    }

    /// <summary>Y'[co, n·P + p] + b[co] → y[n, co, p].</summary>
    private void Scatter(int start, int end)
    {
        int plane = _geometry.OutPlane, columns = Columns;
        var bias = Weights[1].Span;
        for (int n = start; n < end; n++)
        {
            var dst = _y!.Sample(n);
            for (int co = 0; co < Filters; co++)
            {
                TensorPrimitives.Add(_outT.AsSpan(co * columns + n * plane, plane), bias[co], dst.Slice(co * plane, plane));
            }
        }
    }

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx)
    {
        _x = x;
        _dy = dy;
        _dx = dx;
        int columns = Columns, patch = _geometry.PatchSize;
        Team.For(x.BatchSize, _gather);
        var biasGrad = Gradients[1].Span;
        for (int co = 0; co < Filters; co++)
        {
            biasGrad[co] += TensorPrimitives.Sum(_outT.AsSpan(co * columns, columns));
        }
        Gemm.Multiply(false, true, Filters, patch, columns, _outT, columns, _cols, columns, Gradients[0].Span, patch, accumulate: true, Team);
        if (dx is not null)
        {
            // NOTE: the patch matrix is no longer needed, so the column gradient reuses its memory.
            Gemm.Multiply(true, false, patch, columns, Filters, Weights[0].Span, patch, _outT, columns, _cols, columns, accumulate: false, Team);
            Team.For(x.BatchSize, _fold);
        }
    }

    /// <summary>dy[n, co, p] → dY'[co, n·P + p].</summary>
    private void Gather(int start, int end)
    {
        int plane = _geometry.OutPlane, columns = Columns;
        for (int n = start; n < end; n++)
        {
            var src = _dy!.Sample(n);
            for (int co = 0; co < Filters; co++)
            {
                src.Slice(co * plane, plane).CopyTo(_outT.AsSpan(co * columns + n * plane, plane));
            }
        }
    }

    private void Fold(int start, int end)
    {
        for (int n = start; n < end; n++)
        {
            var image = _dx!.Sample(n);
            image.Clear();
            Im2Col.Fold(_geometry, _cols, Columns, n * _geometry.OutPlane, image);
        }
    }
}
