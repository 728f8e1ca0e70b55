namespace Cluster.Optim;

/// <summary>The settings of every optimizer, with PyTorch's defaults.</summary>
public sealed record OptimizerOptions
{
    /// <summary>Optimizer name: <c>sgd</c>, <c>momentum</c>, <c>nesterov</c> or <c>adam</c>. Default <c>momentum</c>.</summary>
    public string Name { get; init; } = "momentum";

    /// <summary>Step size; must be positive. Default 0.01.</summary>
    public float LearningRate { get; init; } = 0.01f;

    /// <summary>Momentum coefficient μ for <c>momentum</c> and <c>nesterov</c>. Default 0.9.</summary>
    public float Momentum { get; init; } = 0.9f;

    /// <summary>Adam's first-moment decay β₁. Default 0.9.</summary>
    public float Beta1 { get; init; } = 0.9f;

    /// <summary>Adam's second-moment decay β₂. Default 0.999.</summary>
    public float Beta2 { get; init; } = 0.999f;

    /// <summary>Adam's ε, added to √v̂. Default 1e-8.</summary>
    public float Epsilon { get; init; } = 1e-8f;

    /// <summary>L2 weight decay λ: adds λ·w to the gradient of weights (biases are left alone). Default 0.</summary>
    public float WeightDecay { get; init; }

    /// <summary>The optimizer names Cluster knows.</summary>
    public static readonly string[] Names = ["sgd", "momentum", "nesterov", "adam"];
}
