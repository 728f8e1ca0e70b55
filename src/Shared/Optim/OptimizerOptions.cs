namespace Cluster.Optim;

/// <summary>The settings of every optimizer, with PyTorch's defaults.</summary>
public sealed record OptimizerOptions
{
    /// <summary>
    /// Optimizer name: <c>sgd</c>, <c>momentum</c>, <c>nesterov</c>, <c>adam</c>, <c>adamw</c>,
    /// <c>rmsprop</c> or <c>adagrad</c>. Default <c>momentum</c>.
    /// </summary>
    public string Name { get; init; } = "momentum";

    /// <summary>Step size; must be positive. Default 0.01.</summary>
    public float LearningRate { get; init; } = 0.01f;

    /// <summary>Momentum coefficient μ for <c>momentum</c> and <c>nesterov</c>. Default 0.9.</summary>
    public float Momentum { get; init; } = 0.9f;

    /// <summary>Adam's first-moment decay β₁. Default 0.9.</summary>
    public float Beta1 { get; init; } = 0.9f;

    /// <summary>Adam's second-moment decay β₂. Default 0.999.</summary>
    public float Beta2 { get; init; } = 0.999f;

    /// <summary>RMSprop's squared-gradient decay α: v ← α·v + (1−α)·g². Default 0.99.</summary>
    public float Alpha { get; init; } = 0.99f;

    /// <summary>
    /// ε added to the root of the second moment by Adam, AdamW (√v̂ + ε) and RMSprop (√v + ε).
    /// Default 1e-8. Adagrad uses its own PyTorch default, 1e-10.
    /// </summary>
    public float Epsilon { get; init; } = 1e-8f;

    /// <summary>
    /// Weight decay λ, for weights only (biases are left alone). Default 0. Every optimizer but
    /// AdamW adds λ·w to the gradient (L2); AdamW decays decoupled, w ← w − η·λ·w, before its step.
    /// </summary>
    public float WeightDecay { get; init; }

    /// <summary>The optimizer names Cluster knows.</summary>
    public static readonly string[] Names = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"];
}
