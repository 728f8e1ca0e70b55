namespace Cluster.Tensors;

/// <summary>
/// A dense float32 array with a shape, viewing a range of a (possibly shared) backing array.
/// Row-major and contiguous; images are NCHW. The first dimension is the batch for activations,
/// and it may shrink and grow back within the capacity allocated, so that a model allocates its
/// activations once and reuses them for every step, including a smaller last batch.
/// Parameters are tensors viewing the model's one flat parameter buffer.
/// </summary>
public sealed class Tensor
{
    private readonly int[] _shape;

    /// <summary>Creates a view of <paramref name="data"/> starting at <paramref name="offset"/>.</summary>
    public Tensor(float[] data, int offset, params int[] shape)
    {
        _shape = (int[])shape.Clone();
        Length = Product(_shape);
        if (offset < 0 || offset + Length > data.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"a view of {Length} floats at offset {offset} does not fit in a buffer of {data.Length}");
        }
        Data = data;
        Offset = offset;
        Capacity = data.Length - offset;
    }

    /// <summary>A new zero-filled tensor of the given shape, owning its buffer.</summary>
    public static Tensor Zeros(params int[] shape) => new(new float[Product(shape)], 0, shape);

    /// <summary>A tensor owning a copy of <paramref name="values"/>.</summary>
    public static Tensor FromValues(ReadOnlySpan<float> values, params int[] shape)
    {
        var t = Zeros(shape);
        if (values.Length != t.Length)
        {
            throw new ArgumentException($"{values.Length} values do not fill shape {ShapeText(shape)}");
        }
        values.CopyTo(t.Span);
        return t;
    }

    /// <summary>The backing array (shared with other views).</summary>
    public float[] Data { get; }

    /// <summary>Where this tensor starts in <see cref="Data"/>.</summary>
    public int Offset { get; }

    /// <summary>Number of elements in the current shape.</summary>
    public int Length { get; private set; }

    /// <summary>The most elements this view may hold (room to grow the batch back).</summary>
    public int Capacity { get; }

    /// <summary>The dimensions; do not modify.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>Size of dimension <paramref name="axis"/>.</summary>
    public int Dim(int axis) => _shape[axis];

    /// <summary>The first dimension: the batch size for activations.</summary>
    public int BatchSize => _shape[0];

    /// <summary>Elements per sample: the product of all dimensions but the first.</summary>
    public int SampleSize => _shape.Length == 1 ? 1 : Length / _shape[0];

    /// <summary>The elements as a span.</summary>
    public Span<float> Span => Data.AsSpan(Offset, Length);

    /// <summary>The elements of sample <paramref name="index"/> along the first dimension.</summary>
    public Span<float> Sample(int index) => Data.AsSpan(Offset + index * SampleSize, SampleSize);

    /// <summary>Changes the first dimension in place, within the capacity; no allocation.</summary>
    public void SetBatchSize(int batch)
    {
        int sample = SampleSize;
        if (batch < 0 || batch * sample > Capacity)
        {
            throw new ArgumentOutOfRangeException(nameof(batch), $"batch {batch} does not fit a tensor allocated for {Capacity / Math.Max(sample, 1)}");
        }
        _shape[0] = batch;
        Length = batch * sample;
    }

    /// <summary>Sets every element to zero.</summary>
    public void Clear() => Span.Clear();

    /// <summary>Product of the dimensions of <paramref name="shape"/>.</summary>
    public static int Product(ReadOnlySpan<int> shape)
    {
        int n = 1;
        foreach (int d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(shape), $"negative dimension {d}");
            }
            n = checked(n * d);
        }
        return n;
    }

    /// <summary>A shape as text, such as <c>[64, 32, 26, 26]</c>.</summary>
    public static string ShapeText(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    /// <inheritdoc/>
    public override string ToString() => $"Tensor{ShapeText(_shape)}";
}
