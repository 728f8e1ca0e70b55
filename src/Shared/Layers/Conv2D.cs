using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// 2-D convolution over NCHW images, by im2col and GEMM, a few images at a time: each group of
/// images is unfolded into a patch matrix cols[C·kh·kw, G·P] small enough to stay in cache, then
/// Y' = W·cols gives every output position of the group, scattered into NCHW with the bias added.
/// Backward unfolds each group again (cheaper than keeping the whole batch's patch matrix, which
/// would make a round trip through DRAM) for dW += dY'·colsᵀ and db += Σ dY', then folds
/// dcols = Wᵀ·dY' back onto the input by col2im. A 1×1 convolution with stride 1 and no padding
/// over large enough images needs no unfolding: each image already is its patch matrix.
/// On a <see cref="ThreadTeam"/> the images are split into one contiguous range per thread, each
/// with its own scratch and weight-gradient partial; the partials are summed in thread order, so
/// results are deterministic for a given thread count.
/// W has shape [out, in, kh, kw] as in PyTorch.
/// </summary>
public sealed class Conv2D : Layer
{
    /// <summary>
    /// Target size of one group's scratch (patch matrix and output), in bytes. NOTE: groups that fit
    /// in L2 (256 KiB) made the GEMMs so short (one 14×14 image: 196 columns) that they lost more
    /// than the cache gained; 1 MiB stays in L3 and was as fast or faster for every resnet and lenet
    /// shape (512 KiB to 2 MiB measured alike).
    /// </summary>
    private const int GroupBytes = 1024 * 1024;

    private ConvGeometry _geometry;
    private int _groupSize;
    private int _parts;
    private Workspace[] _workspaces = [];
    private Tensor? _x, _y, _dy, _dx;
    private readonly Action<int> _forwardPart, _backwardPart;

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
        _forwardPart = ForwardPart;
        _backwardPart = BackwardPart;
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

    /// <summary>Images per group: as many as keep the group's scratch within <see cref="GroupBytes"/>, at least one.</summary>
    internal int GroupSize => _groupSize;

    /// <summary>
    /// A 1×1 stride-1 convolution over images of at least <see cref="MinDirectColumns"/> positions:
    /// each image is its own patch matrix, so it is multiplied in place, one image at a time.
    /// NOTE: smaller images are grouped and copied like any other: a GEMM over 49 columns (7×7)
    /// ran at half the speed of one over a group.
    /// </summary>
    private bool IsDirect => KernelSize == 1 && Stride == 1 && Padding == 0 && _geometry.OutPlane >= MinDirectColumns;

    private const int MinDirectColumns = 256;

    /// <summary>One thread's scratch: a group's patch matrix and output, and its gradient partials.</summary>
    private sealed class Workspace(int cols, int output, int weights, int filters)
    {
        public readonly float[] Cols = new float[cols];
        public readonly float[] Out = new float[output];
        public readonly float[] WeightGrad = new float[weights];
        public readonly float[] BiasGrad = new float[filters];
    }

    /// <inheritdoc/>
    public override void Allocate(int maxBatch)
    {
        long sample = (long)(_geometry.PatchSize + Filters) * _geometry.OutPlane * sizeof(float);
        int groupSize = IsDirect ? 1 : (int)Math.Clamp(GroupBytes / sample, 1, Math.Max(1, maxBatch));
        if (groupSize > _groupSize)
        {
            _groupSize = groupSize;
            _workspaces = [];
        }
    }

    /// <summary>Splits the batch over the team and makes sure every part has its scratch.</summary>
    private void Prepare(int batch)
    {
        if (_groupSize == 0)
        {
            Allocate(batch);
        }
        _parts = Math.Max(1, Math.Min(Team.EffectiveSize, batch));
        if (_workspaces.Length < _parts)
        {
            int columns = _groupSize * _geometry.OutPlane;
            var workspaces = new Workspace[_parts];
            _workspaces.CopyTo(workspaces, 0);
            for (int i = _workspaces.Length; i < _parts; i++)
            {
                workspaces[i] = new Workspace(
                    IsDirect ? 0 : _geometry.PatchSize * columns,
                    _groupSize > 1 ? Filters * columns : 0,
                    i > 0 ? Filters * _geometry.PatchSize : 0,
                    i > 0 ? Filters : 0);
            }
            _workspaces = workspaces;
        }
    }

    /// <summary>Runs <paramref name="part"/> on every member, or on the caller alone (whose GEMMs then use the whole team).</summary>
    private void RunParts(Action<int> part)
    {
        if (_parts == 1)
        {
            part(0);
        }
        else
        {
            Team.Run(part);
        }
    }

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training)
    {
        _x = x;
        _y = y;
        Prepare(x.BatchSize);
        RunParts(_forwardPart);
    }

    private void ForwardPart(int part)
    {
        if (part >= _parts)
        {
            return;
        }
        var ws = _workspaces[part];
        (int start, int end) = ThreadTeam.Partition(_x!.BatchSize, _parts, part);
        int plane = _geometry.OutPlane, patch = _geometry.PatchSize;
        var weights = Weights[0].Span;
        var bias = Weights[1].Span;
        for (int n0 = start; n0 < end; n0 += _groupSize)
        {
            int count = Math.Min(_groupSize, end - n0), columns = count * plane;
            ReadOnlySpan<float> cols = Unfold(ws, n0, count);
            if (count == 1)
            {
                // NOTE: for one image, Y' already is the image's NCHW output.
                var dst = _y!.Sample(n0);
                Gemm.Multiply(false, false, Filters, plane, patch, weights, patch, cols, plane, dst, plane, accumulate: false, Team);
                for (int co = 0; co < Filters; co++)
                {
                    var row = dst.Slice(co * plane, plane);
                    TensorPrimitives.Add(row, bias[co], row);
                }
                continue;
            }
            Gemm.Multiply(false, false, Filters, columns, patch, weights, patch, cols, columns, ws.Out, columns, accumulate: false, Team);
            for (int i = 0; i < count; i++)
            {
                var dst = _y!.Sample(n0 + i);
                for (int co = 0; co < Filters; co++)
                {
                    TensorPrimitives.Add(ws.Out.AsSpan(co * columns + i * plane, plane), bias[co], dst.Slice(co * plane, plane));
                }
            }
        }
    }

    /// <summary>The patch matrix of images [n0, n0+count): unfolded into the scratch, or the image itself for a direct 1×1 convolution.</summary>
    private ReadOnlySpan<float> Unfold(Workspace ws, int n0, int count)
    {
        if (IsDirect)
        {
            return _x!.Sample(n0);
        }
        int plane = _geometry.OutPlane, columns = count * plane;
        for (int i = 0; i < count; i++)
        {
            Im2Col.Unfold(_geometry, _x!.Sample(n0 + i), ws.Cols, columns, i * plane);
        }
        return ws.Cols.AsSpan(0, _geometry.PatchSize * columns);
    }

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx)
    {
        _x = x;
        _dy = dy;
        _dx = dx;
        Prepare(x.BatchSize);
        RunParts(_backwardPart);
        // Fixed-order reduction: part 0 added to the gradients directly, parts 1.. follow in order.
        var weightGrad = Gradients[0].Span;
        var biasGrad = Gradients[1].Span;
        for (int part = 1; part < _parts; part++)
        {
            TensorPrimitives.Add(weightGrad, _workspaces[part].WeightGrad, weightGrad);
            TensorPrimitives.Add(biasGrad, _workspaces[part].BiasGrad, biasGrad);
        }
    }

    private void BackwardPart(int part)
    {
        if (part >= _parts)
        {
            return;
        }
        var ws = _workspaces[part];
        var weightGrad = part == 0 ? Gradients[0].Span : ws.WeightGrad;
        var biasGrad = part == 0 ? Gradients[1].Span : ws.BiasGrad;
        if (part > 0)
        {
            weightGrad.Clear();
            biasGrad.Clear();
        }
        (int start, int end) = ThreadTeam.Partition(_x!.BatchSize, _parts, part);
        int plane = _geometry.OutPlane, patch = _geometry.PatchSize;
        var weights = Weights[0].Span;
        for (int n0 = start; n0 < end; n0 += _groupSize)
        {
            int count = Math.Min(_groupSize, end - n0), columns = count * plane;
            ReadOnlySpan<float> cols = Unfold(ws, n0, count);
            ReadOnlySpan<float> dyGroup = count == 1 ? _dy!.Sample(n0) : Gather(ws, n0, count);
            for (int co = 0; co < Filters; co++)
            {
                biasGrad[co] += TensorPrimitives.Sum(dyGroup.Slice(co * columns, columns));
            }
            Gemm.Multiply(false, true, Filters, patch, columns, dyGroup, columns, cols, columns, weightGrad, patch, accumulate: true, Team);
            if (_dx is null)
            {
                continue;
            }
            if (IsDirect)
            {
                Gemm.Multiply(true, false, patch, plane, Filters, weights, patch, dyGroup, plane, _dx.Sample(n0), plane, accumulate: false, Team);
                continue;
            }
            // NOTE: the group's patch matrix is no longer needed, so the column gradient reuses its memory.
            Gemm.Multiply(true, false, patch, columns, Filters, weights, patch, dyGroup, columns, ws.Cols, columns, accumulate: false, Team);
            for (int i = 0; i < count; i++)
            {
                var image = _dx.Sample(n0 + i);
                image.Clear();
                Im2Col.FoldScratch(_geometry, ws.Cols, columns, i * plane, image);
            }
        }
    }

    /// <summary>dy[n, co, p] for images [n0, n0+count) → dY'[co, i·P + p] in the scratch.</summary>
    private ReadOnlySpan<float> Gather(Workspace ws, int n0, int count)
    {
        int plane = _geometry.OutPlane, columns = count * plane;
        for (int i = 0; i < count; i++)
        {
            var src = _dy!.Sample(n0 + i);
            for (int co = 0; co < Filters; co++)
            {
                src.Slice(co * plane, plane).CopyTo(ws.Out.AsSpan(co * columns + i * plane, plane));
            }
        }
        return ws.Out.AsSpan(0, Filters * columns);
    }
}
