using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// Fully connected layer: y = x·Wᵀ + b, with W of shape [out, in] as in PyTorch.
/// Backward: dW += dyᵀ·x, db += Σ dy, dx = dy·W — three GEMMs.
/// </summary>
public sealed class Dense(int outputs, Initializer init = Initializer.He) : Layer
{
    /// <summary>Output features.</summary>
    public int Outputs { get; } = outputs > 0 ? outputs : throw new ModelSpecException($"dense needs a positive number of outputs, got {outputs}");

    /// <summary>Input features (known once built).</summary>
    public int Inputs => InputShape[0];

    /// <summary>How the weights start.</summary>
    public Initializer Init { get; } = init;

    /// <inheritdoc/>
    public override string Kind => "dense";

    /// <inheritdoc/>
    public override string Spec => Init == Initializer.He ? $"dense {Outputs}" : $"dense {Outputs} init={Init.ToString().ToLowerInvariant()}";

    /// <inheritdoc/>
    public override IReadOnlyList<ParameterSpec> Parameters =>
    [
        new("weight", [Outputs, Inputs], Init, Inputs, Outputs, Decays: true),
        new("bias", [Outputs], Initializer.Zeros, Inputs, Outputs, Decays: false),
    ];

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input)
    {
        if (input.Length != 1)
        {
            throw new ModelSpecException($"dense takes flat features but gets shape {Tensor.ShapeText(input)}: put 'flatten' before it");
        }
        return [Outputs];
    }

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training)
    {
        int batch = x.BatchSize;
        Gemm.Multiply(false, true, batch, Outputs, Inputs, x.Span, Inputs, Weights[0].Span, Inputs, y.Span, Outputs, accumulate: false, Team);
        var bias = Weights[1].Span;
        var output = y.Span;
        for (int n = 0; n < batch; n++)
        {
            var row = output.Slice(n * Outputs, Outputs);
            TensorPrimitives.Add(row, bias, row);
        }
    }

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx)
    {
        int batch = x.BatchSize;
        Gemm.Multiply(true, false, Outputs, Inputs, batch, dy.Span, Outputs, x.Span, Inputs, Gradients[0].Span, Inputs, accumulate: true, Team);
        var biasGrad = Gradients[1].Span;
        var gradOut = dy.Span;
        for (int n = 0; n < batch; n++)
        {
            TensorPrimitives.Add(biasGrad, gradOut.Slice(n * Outputs, Outputs), biasGrad);
        }
        if (dx is not null)
        {
            Gemm.Multiply(false, false, batch, Inputs, Outputs, dy.Span, Outputs, Weights[0].Span, Inputs, dx.Span, Inputs, accumulate: false, Team);
        }
    }
}
