using System.Globalization;
using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// A basic residual block (He et al. 2016): y = relu(bn2(conv2(relu(bn1(conv1(x))))) + skip(x)),
/// with 3×3 convolutions (padding 1, the first with the block's stride). The skip is the identity
/// when the shape is kept, and a 1×1 convolution with batch norm (the projection) when the stride
/// or the channel count changes. Its parameters are its inner layers', back to back, named
/// <c>conv1.weight</c>, <c>bn1.weight</c>, ... as in torchvision's BasicBlock.
/// </summary>
public sealed class ResidualBlock : Layer
{
    private readonly Conv2D _conv1, _conv2;
    private readonly BatchNorm2D _bn1, _bn2;
    private readonly ReLU _relu = new();
    private Conv2D? _projection;
    private BatchNorm2D? _projectionNorm;
    private Tensor[] _buffers = [];
    private Tensor[] _grads = [];
    private int _capacity;

    /// <summary>Creates a block with <paramref name="filters"/> output channels.</summary>
    public ResidualBlock(int filters, int stride = 1)
    {
        if (filters < 1 || stride < 1)
        {
            throw new ModelSpecException($"residual needs filters ≥ 1 and stride ≥ 1; got filters={filters} stride={stride}");
        }
        Filters = filters;
        Stride = stride;
        _conv1 = new Conv2D(filters, 3, stride, 1);
        _bn1 = new BatchNorm2D();
        _conv2 = new Conv2D(filters, 3, 1, 1);
        _bn2 = new BatchNorm2D();
    }

    /// <summary>Output channels.</summary>
    public int Filters { get; }

    /// <summary>Stride of the first convolution (and of the projection).</summary>
    public int Stride { get; }

    /// <inheritdoc/>
    public override string Kind => "residual";

    /// <inheritdoc/>
    public override string Spec => Stride == 1 ? $"residual {Filters}" : string.Create(CultureInfo.InvariantCulture, $"residual {Filters} stride={Stride}");

    private IEnumerable<(string Name, Layer Layer)> Inner()
    {
        yield return ("conv1", _conv1);
        yield return ("bn1", _bn1);
        yield return ("conv2", _conv2);
        yield return ("bn2", _bn2);
        if (_projection is not null)
        {
            yield return ("downsample.0", _projection);
            yield return ("downsample.1", _projectionNorm!);
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<ParameterSpec> Parameters =>
        [.. Inner().SelectMany(inner => inner.Layer.Parameters.Select(p => p with { Name = $"{inner.Name}.{p.Name}" }))];

    /// <inheritdoc/>
    public override IReadOnlyList<ParameterSpec> StateSpecs =>
        [.. Inner().SelectMany(inner => inner.Layer.StateSpecs.Select(p => p with { Name = $"{inner.Name}.{p.Name}" }))];

    /// <inheritdoc/>
    public override void BindState(Tensor[] state)
    {
        int index = 0;
        foreach (var (_, layer) in Inner())
        {
            int count = layer.StateSpecs.Count;
            layer.BindState(state[index..(index + count)]);
            index += count;
        }
    }

    /// <inheritdoc/>
    public override ThreadTeam Team
    {
        get => base.Team;
        set
        {
            base.Team = value;
            foreach (var (_, layer) in Inner())
            {
                layer.Team = value;
            }
            _relu.Team = value;
        }
    }

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input)
    {
        if (input.Length != 3)
        {
            throw new ModelSpecException($"residual takes C×H×W images but gets shape {Tensor.ShapeText(input)}");
        }
        _conv1.Build(input);
        _bn1.Build(_conv1.OutputShape);
        _relu.Build(_conv1.OutputShape);
        _conv2.Build(_conv1.OutputShape);
        _bn2.Build(_conv2.OutputShape);
        if (Stride != 1 || input[0] != Filters)
        {
            _projection = new Conv2D(Filters, 1, Stride, 0);
            _projectionNorm = new BatchNorm2D();
            _projection.Build(input);
            _projectionNorm.Build(_projection.OutputShape);
        }
        return _conv2.OutputShape;
    }

    /// <inheritdoc/>
    public override void Bind(Tensor[] weights, Tensor[] gradients)
    {
        base.Bind(weights, gradients);
        int index = 0;
        foreach (var (_, layer) in Inner())
        {
            int count = layer.Parameters.Count;
            layer.Bind(weights[index..(index + count)], gradients[index..(index + count)]);
            index += count;
        }
    }

    /// <inheritdoc/>
    public override void Seed(ulong seed)
    {
    }

    // Intermediate tensors: 0 conv1, 1 bn1, 2 relu1, 3 conv2, 4 bn2 (+ skip = sum before relu), 5 projection conv, 6 projection bn.
    /// <inheritdoc/>
    public override void Allocate(int maxBatch)
    {
        foreach (var (_, layer) in Inner())
        {
            layer.Allocate(maxBatch);
        }
        _relu.Allocate(maxBatch);
        if (maxBatch <= _capacity)
        {
            return;
        }
        _capacity = maxBatch;
        _buffers = new Tensor[7];
        _grads = new Tensor[7];
        for (int i = 0; i < 7; i++)
        {
            _buffers[i] = Tensor.Zeros([maxBatch, .. OutputShape]);
            _grads[i] = Tensor.Zeros([maxBatch, .. OutputShape]);
        }
        _grads[5] = Tensor.Zeros([maxBatch, .. InputShape]);
    }

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training)
    {
        int batch = x.BatchSize;
        foreach (var t in _buffers)
        {
            t.SetBatchSize(batch);
        }
        foreach (var t in _grads)
        {
            t.SetBatchSize(batch);
        }
        _conv1.Forward(x, _buffers[0], training);
        _bn1.Forward(_buffers[0], _buffers[1], training);
        _relu.Forward(_buffers[1], _buffers[2], training);
        _conv2.Forward(_buffers[2], _buffers[3], training);
        _bn2.Forward(_buffers[3], _buffers[4], training);
        var skip = x;
        if (_projection is not null)
        {
            _projection.Forward(x, _buffers[5], training);
            _projectionNorm!.Forward(_buffers[5], _buffers[6], training);
            skip = _buffers[6];
        }
        // The pre-activation sum is kept in buffer 4 for the final ReLU's backward.
        TensorPrimitives.Add(_buffers[4].Span, skip.Span, _buffers[4].Span);
        _relu.Forward(_buffers[4], y, training);
    }

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx)
    {
        var dSum = _grads[4];
        _relu.Backward(_buffers[4], y, dy, dSum);
        // NOTE: bn2's backward needs its own output only through x̂, which it cached; the sum in buffer 4 is not read.
        _bn2.Backward(_buffers[3], _buffers[4], dSum, _grads[3]);
        _conv2.Backward(_buffers[2], _buffers[3], _grads[3], _grads[2]);
        _relu.Backward(_buffers[1], _buffers[2], _grads[2], _grads[1]);
        _bn1.Backward(_buffers[0], _buffers[1], _grads[1], _grads[0]);
        _conv1.Backward(x, _buffers[0], _grads[0], dx);
        if (_projection is not null)
        {
            _projectionNorm!.Backward(_buffers[5], _buffers[6], dSum, _grads[6]);
            var skipGrad = _grads[5];
            _projection.Backward(x, _buffers[5], _grads[6], dx is null ? null : skipGrad);
            if (dx is not null)
            {
                TensorPrimitives.Add(dx.Span, skipGrad.Span, dx.Span);
            }
        }
        else if (dx is not null)
        {
            TensorPrimitives.Add(dx.Span, dSum.Span, dx.Span);
        }
    }
}
