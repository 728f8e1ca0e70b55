using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// One step of a network, with its forward pass and its backward pass written out side by side.
/// A layer knows its per-sample input and output shapes once built, declares its parameters
/// (which the model places in its one flat buffer and hands back as views), owns the scratch that
/// its backward pass needs, and allocates nothing per step once <see cref="Allocate"/> has run.
/// </summary>
public abstract class Layer
{
    /// <summary>The layer's kind as written in a model spec, such as <c>conv2d</c>.</summary>
    public abstract string Kind { get; }

    /// <summary>The spec line that recreates this layer, such as <c>conv2d 32 3 stride=1 pad=0</c>.</summary>
    public abstract string Spec { get; }

    /// <summary>Per-sample input shape (without the batch dimension); set by <see cref="Build"/>.</summary>
    public int[] InputShape { get; private set; } = [];

    /// <summary>Per-sample output shape (without the batch dimension); set by <see cref="Build"/>.</summary>
    public int[] OutputShape { get; private set; } = [];

    /// <summary>The parameters this layer needs, in the order of <see cref="Weights"/>.</summary>
    public virtual IReadOnlyList<ParameterSpec> Parameters => [];

    /// <summary>Views of the model's flat parameter buffer, one per entry of <see cref="Parameters"/>.</summary>
    public Tensor[] Weights { get; private set; } = [];

    /// <summary>Views of the model's flat gradient buffer, matching <see cref="Weights"/>.</summary>
    public Tensor[] Gradients { get; private set; } = [];

    /// <summary>Threads for this layer's work; the model sets it (and a composite layer passes it on).</summary>
    public virtual ThreadTeam Team { get; set; } = ThreadTeam.Single;

    /// <summary>Fixes the input shape, validates it and computes the output shape.</summary>
    public void Build(int[] inputShape)
    {
        InputShape = (int[])inputShape.Clone();
        OutputShape = InferOutputShape(InputShape);
    }

    /// <summary>The output shape for a per-sample input shape; throws <see cref="Models.ModelSpecException"/> for one it cannot take.</summary>
    protected abstract int[] InferOutputShape(int[] input);

    /// <summary>Attaches the parameter and gradient views the model allocated.</summary>
    public virtual void Bind(Tensor[] weights, Tensor[] gradients)
    {
        Weights = weights;
        Gradients = gradients;
    }

    /// <summary>
    /// Non-trainable tensors the layer keeps across steps and a checkpoint must keep too (batch
    /// norm's running statistics), in the order of <see cref="BindState"/>. They get no gradient.
    /// </summary>
    public virtual IReadOnlyList<ParameterSpec> StateSpecs => [];

    /// <summary>Attaches views of the model's flat state buffer, one per entry of <see cref="StateSpecs"/>.</summary>
    public virtual void BindState(Tensor[] state)
    {
    }

    /// <summary>Allocates scratch for batches of up to <paramref name="maxBatch"/> samples.</summary>
    public virtual void Allocate(int maxBatch)
    {
    }

    /// <summary>Seeds the layer's own randomness (dropout masks).</summary>
    public virtual void Seed(ulong seed)
    {
    }

    /// <summary>Computes <paramref name="y"/> from <paramref name="x"/> (both [batch, ...]) and keeps what the backward pass needs.</summary>
    public abstract void Forward(Tensor x, Tensor y, bool training);

    /// <summary>
    /// Given the gradient of the loss with respect to the output, adds the parameter gradients to
    /// <see cref="Gradients"/> and, when <paramref name="dx"/> is not null, overwrites it with the
    /// gradient with respect to the input. Must follow the <see cref="Forward"/> of the same batch.
    /// </summary>
    public abstract void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx);

    /// <summary>Number of parameters.</summary>
    public int ParameterCount => Parameters.Sum(p => Tensor.Product(p.Shape));

    /// <inheritdoc/>
    public override string ToString() => Spec;
}
