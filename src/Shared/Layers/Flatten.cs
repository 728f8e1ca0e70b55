namespace Cluster.Layers;

/// <summary>Flattens C×H×W (or any shape) into one feature vector per sample; the data is unchanged.</summary>
public sealed class Flatten : Layer
{
    /// <inheritdoc/>
    public override string Kind => "flatten";

    /// <inheritdoc/>
    public override string Spec => Kind;

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input) => [Tensors.Tensor.Product(input)];

    /// <inheritdoc/>
    public override void Forward(Tensors.Tensor x, Tensors.Tensor y, bool training) => x.Span.CopyTo(y.Span);

    /// <inheritdoc/>
    public override void Backward(Tensors.Tensor x, Tensors.Tensor y, Tensors.Tensor dy, Tensors.Tensor? dx)
    {
        if (dx is not null)
        {
            dy.Span.CopyTo(dx.Span);
        }
    }
}
