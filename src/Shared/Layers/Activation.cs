using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// An element-wise layer: the output has the input's shape and each element depends on one input
/// element. Subclasses give the two formulas; this class splits the work over the team.
/// </summary>
public abstract class Activation : Layer
{
    private const int Grain = 1 << 14;
    private Tensor? _x, _y, _dy, _dx;
    private readonly Action<int, int> _forward, _backward;

    /// <summary>Sets up the cached work delegates.</summary>
    protected Activation()
    {
        _forward = (start, end) => ForwardChunk(Chunk(_x!, start, end), Chunk(_y!, start, end));
        _backward = (start, end) => BackwardChunk(Chunk(_x!, start, end), Chunk(_y!, start, end), Chunk(_dy!, start, end), Chunk(_dx!, start, end));
    }

    /// <inheritdoc/>
    public override string Spec => Kind;

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input) => input;

    private static Span<float> Chunk(Tensor t, int start, int end)
    {
        int from = start * Grain, to = Math.Min(t.Length, end * Grain);
        return t.Data.AsSpan(t.Offset + from, to - from);
    }

    private static int Chunks(Tensor t) => (t.Length + Grain - 1) / Grain;

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training)
    {
        _x = x;
        _y = y;
        Team.For(Chunks(x), _forward);
    }

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx)
    {
        if (dx is null)
        {
            return;
        }
        _x = x;
        _y = y;
        _dy = dy;
        _dx = dx;
        Team.For(Chunks(x), _backward);
    }

    /// <summary>y = f(x) on one chunk.</summary>
    protected abstract void ForwardChunk(ReadOnlySpan<float> x, Span<float> y);

    /// <summary>dx = f′ · dy on one chunk; x and y are the forward input and output.</summary>
    protected abstract void BackwardChunk(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx);
}
