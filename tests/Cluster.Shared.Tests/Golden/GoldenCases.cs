namespace Cluster.Tests.Golden;

/// <summary>One golden file: the cases of one family, with the PyTorch version that computed them.</summary>
internal sealed record GoldenFile<TCase>(string Generator, string Torch, TCase[] Cases);

/// <summary>A tensor as the generator writes it: its shape and its values in row-major order.</summary>
internal sealed record GoldenTensor(int[] Shape, float[] Values);

/// <summary>
/// A network of one or more layers run once forward and backward with L = Σ y·dy. Parameter and
/// state names are those of Cluster's <see cref="Cluster.Models.Sequential"/> (<c>0.weight</c>,
/// <c>0.running_mean</c>, <c>0.conv1.weight</c>).
/// </summary>
/// <param name="Model">A model spec, lines separated by <c>;</c>.</param>
/// <param name="Training">Whether the forward pass runs in training mode (batch statistics).</param>
/// <param name="State">Running statistics before the step; absent when the network has none.</param>
internal sealed record LayerCase(
    string Name,
    string Model,
    bool Training,
    GoldenTensor X,
    Dictionary<string, GoldenTensor> Parameters,
    GoldenTensor Dy,
    LayerExpectation Expected,
    Dictionary<string, GoldenTensor>? State = null)
{
    public override string ToString() => Name;
}

/// <summary>PyTorch's output, input gradient, parameter gradients and (in training) running statistics after the step.</summary>
internal sealed record LayerExpectation(GoldenTensor Y, GoldenTensor Dx, Dictionary<string, GoldenTensor> Gradients, Dictionary<string, GoldenTensor>? State = null);

/// <summary>A loss on a batch of logits, against integer labels or explicit targets (MSE).</summary>
/// <param name="Loss">The loss's name in a model spec: <c>cross-entropy</c> or <c>mse</c>.</param>
internal sealed record LossCase(string Name, string Loss, GoldenTensor Logits, LossExpectation Expected, int[]? Labels = null, GoldenTensor? Targets = null);

/// <summary>PyTorch's mean loss and its gradient with respect to the logits.</summary>
internal sealed record LossExpectation(double Loss, GoldenTensor Dlogits);

/// <summary>An optimizer stepped from <paramref name="Start"/> through one gradient per step.</summary>
/// <param name="Expected">The parameters after each step.</param>
internal sealed record OptimizerCase(string Name, OptimizerSettings Optimizer, LayoutEntry[] Layout, float[] Start, float[][] Gradients, float[][] Expected);

/// <summary>The optimizer's name in Cluster and the settings that differ from the defaults.</summary>
internal sealed record OptimizerSettings(
    string Name,
    float Lr,
    float? Momentum = null,
    float? Beta1 = null,
    float? Beta2 = null,
    float? Alpha = null,
    float? Eps = null,
    float? WeightDecay = null);

/// <summary>One parameter tensor of an optimizer case, in the order of the flat buffer.</summary>
internal sealed record LayoutEntry(string Name, int[] Shape, bool Decays);

/// <summary>A gradient vector clipped to a global norm.</summary>
internal sealed record ClippingCase(string Name, float MaxNorm, float[] Gradients, ClippingExpectation Expected);

/// <summary>The norm before clipping and the clipped gradients, as torch.nn.utils.clip_grad_norm_ gives them.</summary>
internal sealed record ClippingExpectation(double Norm, float[] Gradients);

/// <summary>A learning-rate schedule in the syntax of <c>--schedule</c>, with PyTorch's rate for each epoch.</summary>
internal sealed record ScheduleCase(string Name, string Schedule, int Epochs, float BaseRate, double[] Rates);
