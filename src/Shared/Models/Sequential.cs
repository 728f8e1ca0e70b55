using Cluster.Layers;
using Cluster.Tensors;

namespace Cluster.Models;

/// <summary>
/// A network as a chain of layers, with one flat parameter buffer and one flat gradient buffer
/// that every layer views into: a push or pull of the whole model is one span, and a parameter
/// server shard is a range of it. Activations and their gradients are allocated once for the
/// largest batch seen and reused, so a training step allocates nothing.
/// </summary>
public sealed class Sequential
{
    /// <summary>Where the streams of <see cref="SeedEpoch"/> start, apart from those of the initial weights and the data order.</summary>
    private const ulong EpochRandomnessStream = 0xD0_0000_0000_0000UL;

    private readonly List<Layer> _layers;
    private Tensor[] _activations = [];
    private Tensor[] _activationGrads = [];
    private int _capacity;
    private Tensor? _input;
    private ThreadTeam _team = ThreadTeam.Single;

    /// <summary>Builds the layers of <paramref name="spec"/> and lays out their parameters; call <see cref="Initialize"/> next.</summary>
    public Sequential(ModelSpec spec)
    {
        Spec = spec;
        _layers = spec.CreateLayers();
        Loss = Cluster.Layers.Loss.Create(spec.LossName);
        var named = new List<NamedParameter>();
        int total = 0;
        for (int i = 0; i < _layers.Count; i++)
        {
            foreach (var p in _layers[i].Parameters)
            {
                named.Add(new NamedParameter($"{i}.{p.Name}", total, p.Shape, p.Decays));
                total += Tensor.Product(p.Shape);
            }
        }
        Parameters = new float[total];
        Gradients = new float[total];
        NamedParameters = named;
        var namedState = new List<NamedParameter>();
        int stateTotal = 0;
        for (int i = 0; i < _layers.Count; i++)
        {
            foreach (var p in _layers[i].StateSpecs)
            {
                namedState.Add(new NamedParameter($"{i}.{p.Name}", stateTotal, p.Shape, Decays: false));
                stateTotal += Tensor.Product(p.Shape);
            }
        }
        State = new float[stateTotal];
        NamedState = namedState;
        int stateIndex = 0;
        foreach (var layer in _layers)
        {
            var views = new Tensor[layer.StateSpecs.Count];
            for (int j = 0; j < views.Length; j++, stateIndex++)
            {
                views[j] = new Tensor(State, namedState[stateIndex].Offset, namedState[stateIndex].Shape);
            }
            if (views.Length > 0)
            {
                layer.BindState(views);
            }
        }
        int index = 0;
        foreach (var layer in _layers)
        {
            var weights = new Tensor[layer.Parameters.Count];
            var grads = new Tensor[weights.Length];
            for (int j = 0; j < weights.Length; j++, index++)
            {
                weights[j] = new Tensor(Parameters, named[index].Offset, named[index].Shape);
                grads[j] = new Tensor(Gradients, named[index].Offset, named[index].Shape);
            }
            layer.Bind(weights, grads);
        }
    }

    /// <summary>The spec this model was built from.</summary>
    public ModelSpec Spec { get; }

    /// <summary>The layers, in order.</summary>
    public IReadOnlyList<Layer> Layers => _layers;

    /// <summary>The training loss.</summary>
    public Loss Loss { get; }

    /// <summary>All parameters, back to back in layer order.</summary>
    public float[] Parameters { get; }

    /// <summary>The gradient of every parameter, laid out as <see cref="Parameters"/>.</summary>
    public float[] Gradients { get; }

    /// <summary>Each parameter tensor's name and place in the flat buffers.</summary>
    public IReadOnlyList<NamedParameter> NamedParameters { get; }

    /// <summary>Number of parameters.</summary>
    public int ParameterCount => Parameters.Length;

    /// <summary>Non-trainable state kept across steps (batch norm's running statistics), back to back in layer order.</summary>
    public float[] State { get; }

    /// <summary>Each state tensor's name (<c>3.running_mean</c>, as PyTorch names buffers) and place in <see cref="State"/>.</summary>
    public IReadOnlyList<NamedParameter> NamedState { get; }

    /// <summary>What a checkpoint holds: every parameter, then every state tensor, with offsets into <see cref="Parameters"/> followed by <see cref="State"/>.</summary>
    public IReadOnlyList<NamedParameter> SavedTensors =>
        [.. NamedParameters, .. NamedState.Select(s => s with { Offset = s.Offset + Parameters.Length })];

    /// <summary>Floats a checkpoint holds: parameters and state.</summary>
    public int SavedLength => Parameters.Length + State.Length;

    /// <summary>Sets parameters and state from the layout of <see cref="SavedTensors"/>.</summary>
    public void SetSaved(ReadOnlySpan<float> values)
    {
        values[..Parameters.Length].CopyTo(Parameters);
        values[Parameters.Length..].CopyTo(State);
    }

    /// <summary>Per-sample input shape.</summary>
    public int[] InputShape => Spec.InputShape;

    /// <summary>Per-sample output shape.</summary>
    public int[] OutputShape => _layers[^1].OutputShape;

    /// <summary>Threads the layers use; default one.</summary>
    public ThreadTeam Team
    {
        get => _team;
        set
        {
            _team = value;
            foreach (var layer in _layers)
            {
                layer.Team = value;
            }
        }
    }

    /// <summary>
    /// Reseeds the layers' own randomness (dropout masks) for one epoch of one data shard, so that
    /// an epoch's masks depend on the seed, the epoch and the shard alone: a run resumed at an epoch
    /// draws the masks the uninterrupted run drew, and each worker of a cluster draws its own.
    /// </summary>
    public void SeedEpoch(ulong seed, int epoch, int shard = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentOutOfRangeException.ThrowIfNegative(shard);
        for (int i = 0; i < _layers.Count; i++)
        {
            ulong stream = EpochRandomnessStream + ((ulong)shard << 40) + ((ulong)epoch << 16) + (ulong)i;
            _layers[i].Seed(SeededRandom.Derive(seed, stream).NextUInt64());
        }
    }

    /// <summary>Initialises every parameter from <paramref name="seed"/> (He or Xavier normal weights, zero biases, uniform recurrent weights) and seeds dropout.</summary>
    public void Initialize(ulong seed)
    {
        int index = 0;
        for (int i = 0; i < _layers.Count; i++)
        {
            var layer = _layers[i];
            layer.Seed(SeededRandom.Derive(seed, (ulong)(1000 + i)).NextUInt64());
            for (int j = 0; j < layer.Parameters.Count; j++, index++)
            {
                var spec = layer.Parameters[j];
                var values = layer.Weights[j].Span;
                var random = SeededRandom.Derive(seed, (ulong)index);
                double std = spec.Init switch
                {
                    Initializer.He => Math.Sqrt(2.0 / spec.FanIn),
                    Initializer.Xavier => Math.Sqrt(2.0 / (spec.FanIn + spec.FanOut)),
                    Initializer.Uniform => 1.0 / Math.Sqrt(spec.FanIn),
                    _ => 0.0,
                };
                for (int k = 0; k < values.Length; k++)
                {
                    values[k] = spec.Init switch
                    {
                        Initializer.Ones => 1f,
                        Initializer.Uniform => (float)((2.0 * random.NextFloat() - 1.0) * std),
                        _ => std == 0.0 ? 0f : (float)(random.NextGaussian() * std),
                    };
                }
            }
        }
    }

    /// <summary>Makes room for batches of up to <paramref name="maxBatch"/> samples; allocates only when growing.</summary>
    public void Allocate(int maxBatch)
    {
        if (maxBatch <= _capacity)
        {
            return;
        }
        _capacity = maxBatch;
        _activations = new Tensor[_layers.Count];
        _activationGrads = new Tensor[_layers.Count];
        for (int i = 0; i < _layers.Count; i++)
        {
            _activations[i] = Tensor.Zeros([maxBatch, .. _layers[i].OutputShape]);
            _activationGrads[i] = Tensor.Zeros([maxBatch, .. _layers[i].OutputShape]);
            _layers[i].Allocate(maxBatch);
        }
    }

    /// <summary>The gradient buffer of the output, where the loss writes d(loss)/d(output).</summary>
    public Tensor OutputGradient => _activationGrads[^1];

    /// <summary>
    /// Runs the network on <paramref name="input"/> ([batch, ...InputShape]) and returns the output
    /// tensor, which the model owns and overwrites on the next call.
    /// </summary>
    public Tensor Forward(Tensor input, bool training) => Forward(input, training, null);

    /// <summary>
    /// Runs the network like <see cref="Forward(Tensor, bool)"/>, first calling
    /// <paramref name="weightsNeeded"/> with the offset and length of each layer's parameters in the
    /// flat buffer before that layer runs. A worker whose next weights are still arriving waits
    /// there, for that layer's chunks only.
    /// </summary>
    public Tensor Forward(Tensor input, bool training, Action<int, int>? weightsNeeded)
    {
        if (input.SampleSize != Tensor.Product(InputShape))
        {
            throw new ArgumentException($"input of {input.SampleSize} values per sample does not match the model's input {Tensor.ShapeText(InputShape)}");
        }
        int batch = input.BatchSize;
        Allocate(batch);
        _input = input;
        var x = input;
        for (int i = 0; i < _layers.Count; i++)
        {
            var y = _activations[i];
            y.SetBatchSize(batch);
            _activationGrads[i].SetBatchSize(batch);
            if (weightsNeeded is not null && _layers[i].Weights is { Length: > 0 } weights)
            {
                weightsNeeded(weights[0].Offset, weights[^1].Offset + weights[^1].Length - weights[0].Offset);
            }
            _layers[i].Forward(x, y, training);
            x = y;
        }
        return x;
    }

    /// <summary>
    /// Backpropagates <see cref="OutputGradient"/> through every layer, adding to
    /// <see cref="Gradients"/>. Call <see cref="ZeroGradients"/> first to start a fresh step.
    /// </summary>
    public void Backward() => Backward(null);

    /// <summary>
    /// Backpropagates like <see cref="Backward()"/>, calling <paramref name="gradientsReadyFrom"/>
    /// with an offset each time the gradients from that offset to the end of the flat buffer are
    /// final (after each layer with parameters). A worker uses it to start sending the last layers'
    /// gradients while the first layers are still being computed, as bucketed all-reduce does.
    /// </summary>
    public void Backward(Action<int>? gradientsReadyFrom)
    {
        if (_input is null)
        {
            throw new InvalidOperationException("Backward needs a Forward first");
        }
        for (int i = _layers.Count - 1; i >= 0; i--)
        {
            var x = i == 0 ? _input : _activations[i - 1];
            var dx = i == 0 ? null : _activationGrads[i - 1];
            _layers[i].Backward(x, _activations[i], _activationGrads[i], dx);
            if (gradientsReadyFrom is not null && _layers[i].Gradients.Length > 0)
            {
                gradientsReadyFrom(_layers[i].Gradients[0].Offset);
            }
        }
    }

    /// <summary>Sets every parameter gradient to zero.</summary>
    public void ZeroGradients() => Array.Clear(Gradients);
}
