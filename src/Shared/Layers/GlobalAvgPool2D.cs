using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>Global average pooling: each C×H×W image becomes C features, the mean of each channel; backward spreads dy/(H·W) over the channel.</summary>
public sealed class GlobalAvgPool2D : Layer
{
    /// <inheritdoc/>
    public override string Kind => "globalavgpool2d";

    /// <inheritdoc/>
    public override string Spec => Kind;

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input) => input.Length == 3
        ? [input[0]]
        : throw new ModelSpecException($"globalavgpool2d takes C×H×W images but gets shape {Tensor.ShapeText(input)}");

    private int Plane => InputShape[1] * InputShape[2];

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training)
    {
        int planes = x.BatchSize * InputShape[0], plane = Plane;
        var input = x.Span;
        var output = y.Span;
        for (int p = 0; p < planes; p++)
        {
            output[p] = TensorPrimitives.Sum(input.Slice(p * plane, plane)) / plane;
        }
    }

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx)
    {
        if (dx is null)
        {
            return;
        }
        int planes = x.BatchSize * InputShape[0], plane = Plane;
        var gradIn = dx.Span;
        var gradOut = dy.Span;
        for (int p = 0; p < planes; p++)
        {
            gradIn.Slice(p * plane, plane).Fill(gradOut[p] / plane);
        }
    }
}
