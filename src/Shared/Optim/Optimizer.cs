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

    /// <summary>
    /// The buffers that carry state from one step to the next, by PyTorch's name for them (see
    /// <see cref="OptimizerState.Buffers"/>); scratch space is not state. Empty for plain SGD.
    /// </summary>
    protected virtual IEnumerable<(string Name, float[] Values)> StateBuffers => [];

    /// <summary>A copy of the state: the step count and every state buffer.</summary>
    public OptimizerState CaptureState() =>
        new(Options.Name, StepCount, StateBuffers.ToDictionary(b => b.Name, b => b.Values.ToArray(), StringComparer.Ordinal));

    /// <summary>
    /// Puts back a state captured from an optimizer of the same kind and size, so that the next
    /// step is the one the captured optimizer would have taken.
    /// </summary>
    /// <exception cref="ArgumentException">The state is another optimizer's, or its buffers do not match this one's.</exception>
    public void RestoreState(OptimizerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var buffers = StateBuffers.ToList();
        if (state.Optimizer != Options.Name)
        {
            throw new ArgumentException($"the state is {state.Optimizer}'s; this optimizer is {Options.Name}", nameof(state));
        }
        string expected = string.Join(", ", buffers.Select(b => b.Name));
        if (state.Buffers.Count != buffers.Count || buffers.Any(b => !state.Buffers.ContainsKey(b.Name)))
        {
            throw new ArgumentException($"{Options.Name} keeps [{expected}] here but the state holds [{string.Join(", ", state.Buffers.Keys)}]", nameof(state));
        }
        if (state.Steps < 0)
        {
            throw new ArgumentException($"the state's step count {state.Steps} is negative", nameof(state));
        }
        foreach (var (name, values) in buffers)
        {
            var saved = state.Buffers[name];
            if (saved.Length != values.Length)
            {
                throw new ArgumentException($"state buffer {name} holds {saved.Length} values; this optimizer has {values.Length}", nameof(state));
            }
        }
        foreach (var (name, values) in buffers)
        {
            state.Buffers[name].CopyTo(values, 0);
        }
        StepCount = state.Steps;
    }

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
        BeginStep();
        StepSlice(0, parameters, gradients);
    }

    /// <summary>
    /// Starts a step taken slice by slice with <see cref="StepSlice"/>: a parameter server updates
    /// each part of the weights as soon as its gradients are in, and the update is element-wise, so
    /// the slices together are exactly one <see cref="Step"/>.
    /// </summary>
    public void BeginStep() => StepCount++;

    /// <summary>
    /// Applies the step begun by <see cref="BeginStep"/> to the parameters at
    /// [<paramref name="offset"/>, offset + length) of the flat buffer; <paramref name="parameters"/>
    /// and <paramref name="gradients"/> are that slice. Each slice once per step.
    /// </summary>
    public void StepSlice(int offset, Span<float> parameters, ReadOnlySpan<float> gradients)
    {
        if (StepCount == 0)
        {
            throw new InvalidOperationException("StepSlice needs BeginStep first");
        }
        if (offset < 0 || parameters.Length != gradients.Length || offset + parameters.Length > Size)
        {
            throw new ArgumentException($"slice at {offset} of {parameters.Length} parameters and {gradients.Length} gradients does not fit an optimizer of {Size} parameters");
        }
        Update(offset, parameters, WithWeightDecay(offset, parameters, gradients));
    }

    /// <summary>
    /// The optimizer's own rule for the slice at <paramref name="offset"/> of the flat buffers, given
    /// the gradient with weight decay already added (when <see cref="FoldsWeightDecayIntoGradient"/>).
    /// State buffers are indexed from <paramref name="offset"/>.
    /// </summary>
    protected abstract void Update(int offset, Span<float> parameters, ReadOnlySpan<float> gradients);

    /// <summary>
    /// Where the decaying tensor <paramref name="p"/> overlaps the slice [offset, offset + length):
    /// false when it does not; otherwise the overlap's start within the slice and its length.
    /// </summary>
    protected static bool DecayingPart(NamedParameter p, int offset, int length, out int start, out int count)
    {
        int from = Math.Max(p.Offset, offset), to = Math.Min(p.Offset + p.Length, offset + length);
        start = from - offset;
        count = to - from;
        return p.Decays && count > 0;
    }

    private ReadOnlySpan<float> WithWeightDecay(int offset, ReadOnlySpan<float> parameters, ReadOnlySpan<float> gradients)
    {
        if (Options.WeightDecay == 0f || !FoldsWeightDecayIntoGradient)
        {
            return gradients;
        }
        _decayed ??= new float[Size];
        var decayed = _decayed.AsSpan(offset, gradients.Length);
        gradients.CopyTo(decayed);
        foreach (var p in _layout)
        {
            if (DecayingPart(p, offset, gradients.Length, out int start, out int count))
            {
                var g = decayed.Slice(start, count);
                TensorPrimitives.MultiplyAdd(parameters.Slice(start, count), Options.WeightDecay, g, g);
            }
        }
        return decayed;
    }
}
