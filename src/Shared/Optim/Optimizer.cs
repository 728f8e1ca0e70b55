using Cluster.Models;

namespace Cluster.Optim;

/// <summary>
/// Updates a model's flat parameter buffer from its flat gradient buffer. Optimizers own their
/// state (velocities, moments) in buffers of the same layout, allocated once. L2 weight decay is
/// folded into the gradient here (g ← g + λ·w), for weights only, so every optimizer gets it the
/// same way, unless the optimizer opts out through <see cref="FoldsWeightDecayIntoGradient"/>
/// (AdamW decays the weights itself).
/// </summary>
public abstract class Optimizer
{
    private readonly IReadOnlyList<NamedParameter> _layout;
    private float[]? _decayed;

    /// <summary>Creates the optimizer for parameters laid out as <paramref name="layout"/>.</summary>
    protected Optimizer(OptimizerOptions options, IReadOnlyList<NamedParameter> layout)
    {
        if (!(options.LearningRate > 0f) || float.IsInfinity(options.LearningRate))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"learning rate {options.LearningRate} must be a positive number");
        }
        if (!(options.WeightDecay >= 0f))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"weight decay {options.WeightDecay} must be ≥ 0");
        }
        Options = options;
        LearningRate = options.LearningRate;
        _layout = layout;
        Size = layout.Count == 0 ? 0 : layout[^1].Offset + layout[^1].Length;
    }

    /// <summary>The settings.</summary>
    public OptimizerOptions Options { get; }

    /// <summary>The current step size (a schedule may change it between steps).</summary>
    public float LearningRate { get; set; }

    /// <summary>Number of parameters handled.</summary>
    public int Size { get; }

    /// <summary>Steps taken so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>Where each parameter tensor lives in the flat buffers, and whether it decays.</summary>
    protected IReadOnlyList<NamedParameter> Layout => _layout;

    /// <summary>
    /// Whether <see cref="Step"/> adds λ·w to the gradient of decaying weights before calling
    /// <see cref="Update"/> (classic L2). Default <see langword="true"/>; optimizers with decoupled
    /// weight decay (AdamW) return <see langword="false"/> and apply λ themselves.
    /// </summary>
    protected virtual bool FoldsWeightDecayIntoGradient => true;

    /// <summary>Creates the optimizer named in <paramref name="options"/>.</summary>
    public static Optimizer Create(OptimizerOptions options, IReadOnlyList<NamedParameter> layout) => options.Name switch
    {
        "sgd" => new Sgd(options, layout, momentum: 0f, nesterov: false),
        "momentum" => new Sgd(options, layout, options.Momentum, nesterov: false),
        "nesterov" => new Sgd(options, layout, options.Momentum, nesterov: true),
        "adam" => new Adam(options, layout),
        "adamw" => new AdamW(options, layout),
        "rmsprop" => new RmsProp(options, layout, momentum: 0f),
        "adagrad" => new Adagrad(options, layout),
        _ => throw new ArgumentOutOfRangeException(nameof(options), $"unknown optimizer '{options.Name}': use one of {string.Join(", ", OptimizerOptions.Names)}"),
    };

    /// <summary>Applies one update: <paramref name="parameters"/> -= f(<paramref name="gradients"/>).</summary>
    public void Step(Span<float> parameters, ReadOnlySpan<float> gradients)
    {
        if (parameters.Length != Size || gradients.Length != Size)
        {
            throw new ArgumentException($"optimizer built for {Size} parameters got {parameters.Length} parameters and {gradients.Length} gradients");
        }
        StepCount++;
        Update(parameters, WithWeightDecay(parameters, gradients));
    }

    /// <summary>
    /// The optimizer's own rule, given the gradient with weight decay already added (when
    /// <see cref="FoldsWeightDecayIntoGradient"/>).
    /// </summary>
    protected abstract void Update(Span<float> parameters, ReadOnlySpan<float> gradients);

    private ReadOnlySpan<float> WithWeightDecay(ReadOnlySpan<float> parameters, ReadOnlySpan<float> gradients)
    {
        if (Options.WeightDecay == 0f || !FoldsWeightDecayIntoGradient)
        {
            return gradients;
        }
        _decayed ??= new float[Size];
        gradients.CopyTo(_decayed);
        foreach (var p in _layout)
        {
            if (p.Decays)
            {
                var g = _decayed.AsSpan(p.Offset, p.Length);
                TensorPrimitives.MultiplyAdd(parameters.Slice(p.Offset, p.Length), Options.WeightDecay, g, g);
            }
        }
        return _decayed;
    }
}
