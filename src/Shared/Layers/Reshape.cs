using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// Gives each sample a new shape with the same number of values, such as an image [1, 28, 28]
/// read as a sequence of 28 steps of 28 features (<c>reshape 28 28</c>); the data is unchanged.
/// </summary>
public sealed class Reshape(int[] shape) : Layer
{
    /// <summary>The per-sample output shape.</summary>
    public int[] Target { get; } = shape.Length > 0 && shape.All(d => d > 0)
        ? shape
        : throw new ModelSpecException($"reshape needs one or more positive sizes, got {Tensor.ShapeText(shape)}");

    /// <inheritdoc/>
    public override string Kind => "reshape";

    /// <inheritdoc/>
    public override string Spec => "reshape " + string.Join(' ', Target);

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input) => Tensor.Product(input) == Tensor.Product(Target)
        ? (int[])Target.Clone()
        : throw new ModelSpecException($"reshape to {Tensor.ShapeText(Target)} needs {Tensor.Product(Target)} values per sample but gets shape {Tensor.ShapeText(input)} ({Tensor.Product(input)} values)");

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training) => x.Span.CopyTo(y.Span);

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx) => dy.Span.CopyTo(dx is null ? [] : dx.Span);
}
