namespace Cluster.Models;

/// <summary>
/// Where one parameter tensor lives in a model's flat buffer. Names follow PyTorch's
/// nn.Sequential state_dict (<c>0.weight</c>, <c>0.bias</c>, <c>3.weight</c>, ...), so a
/// checkpoint's tensors map one to one onto the equivalent PyTorch model.
/// </summary>
/// <param name="Name">Layer index and parameter name, such as <c>0.weight</c>.</param>
/// <param name="Offset">First element in the flat buffer.</param>
/// <param name="Shape">Shape of the tensor.</param>
/// <param name="Decays">Whether L2 weight decay applies (weights yes, biases no).</param>
public sealed record NamedParameter(string Name, int Offset, int[] Shape, bool Decays)
{
    /// <summary>Number of elements.</summary>
    public int Length => Tensors.Tensor.Product(Shape);
}
