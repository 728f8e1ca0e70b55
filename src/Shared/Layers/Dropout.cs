using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// Inverted dropout: in training each element is zeroed with probability p and the survivors are
/// scaled by 1/(1−p), so evaluation is the identity. Masks come from a seeded generator, so a
/// seeded run drops the same units every time.
/// </summary>
public sealed class Dropout : Layer
{
    private float[] _mask = [];
    private SeededRandom _random = new(0);

    /// <summary>Creates the layer with drop probability <paramref name="probability"/> in [0, 1).</summary>
    public Dropout(float probability)
    {
        if (!(probability >= 0f && probability < 1f))
        {
            throw new ModelSpecException($"dropout probability must be in [0, 1), got {probability}");
        }
        Probability = probability;
    }

    /// <summary>Probability of dropping an element in training.</summary>
    public float Probability { get; }

    /// <inheritdoc/>
    public override string Kind => "dropout";

    /// <inheritdoc/>
    public override string Spec => $"dropout {Probability.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input) => input;

    /// <inheritdoc/>
    public override void Seed(ulong seed) => _random = new SeededRandom(seed);

    /// <inheritdoc/>
    public override void Allocate(int maxBatch)
    {
        int needed = maxBatch * Tensor.Product(InputShape);
        if (_mask.Length < needed)
        {
            _mask = new float[needed];
        }
    }

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training)
    {
        var input = x.Span;
        var output = y.Span;
        if (!training || Probability == 0f)
        {
            input.CopyTo(output);
            _mask.AsSpan(0, input.Length).Fill(1f);
            return;
        }
        float keep = 1f / (1f - Probability);
        var mask = _mask.AsSpan(0, input.Length);
        for (int i = 0; i < mask.Length; i++)
        {
            mask[i] = _random.NextFloat() < Probability ? 0f : keep;
        }
        TensorPrimitives.Multiply(input, mask, output);
    }

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx)
    {
        if (dx is not null)
        {
            TensorPrimitives.Multiply(dy.Span, _mask.AsSpan(0, dy.Length), dx.Span);
        }
    }
}
