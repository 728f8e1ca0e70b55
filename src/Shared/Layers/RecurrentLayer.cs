using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// What a recurrent layer hands to the next layer: the hidden state after the last step, or the
/// hidden state after every step (to stack another recurrent layer on top).
/// </summary>
public enum RecurrentOutput
{
    /// <summary>Output [hidden]: the state after the last step.</summary>
    Last,

    /// <summary>Output [steps, hidden]: the state after every step.</summary>
    Sequence,
}

/// <summary>
/// The shared machinery of RNN, LSTM and GRU layers: input [steps, features] per sample, batch
/// first; parameters in PyTorch's layout and names (<c>weight_ih_l0</c> [G·H, I],
/// <c>weight_hh_l0</c> [G·H, H], <c>bias_ih_l0</c>, <c>bias_hh_l0</c>, G gate blocks); zero
/// initial state; backpropagation through time over the whole sequence.
/// </summary>
/// <remarks>
/// The work is arranged so that almost all of it is a few large GEMMs rather than one small one
/// per sample: the input is turned time-major once, its projection onto every gate for every step
/// is a single [T·B, I]×[I, G·H] product before the loop, and after the backward loop the weight
/// gradients are single products over all T·B rows. Only the recurrence itself — one [B, H]×[H, G·H]
/// product per step and the gate arithmetic — runs step by step. With several threads, each runs
/// the whole recurrence for its own slice of the batch (the samples are independent), so the
/// threads meet twice per pass instead of at every step.
/// </remarks>
public abstract class RecurrentLayer : Layer
{
    /// <summary>Creates a layer with <paramref name="hidden"/> units and <paramref name="gates"/> gate blocks.</summary>
    protected RecurrentLayer(int hidden, RecurrentOutput output, int gates)
    {
        Hidden = hidden > 0 ? hidden : throw new ModelSpecException($"{GetType().Name.ToLowerInvariant()} needs a positive number of hidden units, got {hidden}");
        Output = output;
        Gates = gates;
    }

    /// <summary>Hidden units H.</summary>
    public int Hidden { get; }

    /// <summary>Whether the layer returns the last state or every state.</summary>
    public RecurrentOutput Output { get; }

    /// <summary>Gate blocks G in the weight matrices: 1 (RNN), 3 (GRU), 4 (LSTM).</summary>
    protected int Gates { get; }

    /// <summary>Time steps T per sample (known once built).</summary>
    public int Steps => InputShape[0];

    /// <summary>Features I per step (known once built).</summary>
    public int Features => InputShape[1];

    /// <summary>G·H: the width of the gate pre-activations.</summary>
    protected int GateWidth => Gates * Hidden;

    /// <inheritdoc/>
    public override string Spec => Output == RecurrentOutput.Last ? $"{Kind} {Hidden}" : $"{Kind} {Hidden} return=sequence";

    /// <inheritdoc/>
    public override IReadOnlyList<ParameterSpec> Parameters =>
    [
        new("weight_ih_l0", [GateWidth, Features], Initializer.Uniform, Hidden, GateWidth, Decays: true),
        new("weight_hh_l0", [GateWidth, Hidden], Initializer.Uniform, Hidden, GateWidth, Decays: true),
        new("bias_ih_l0", [GateWidth], Initializer.Uniform, Hidden, GateWidth, Decays: false),
        new("bias_hh_l0", [GateWidth], Initializer.Uniform, Hidden, GateWidth, Decays: false),
    ];

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input)
    {
        if (input.Length != 2)
        {
            throw new ModelSpecException(
                $"{Kind} takes sequences [steps, features] but gets shape {Tensor.ShapeText(input)}" +
                (input.Length == 3 ? $": put 'reshape {input[0] * input[1]} {input[2]}' before it to read each image row as one step" : ""));
        }
        return Output == RecurrentOutput.Last ? [Hidden] : [input[0], Hidden];
    }

    /// <summary>The input, time-major: [T, B, I].</summary>
    protected float[] TimeMajorInput { get; private set; } = [];

    /// <summary>Gate values per step, [T, B, G·H]: the input projection, turned into activated gates by the forward pass.</summary>
    protected float[] GateValues { get; private set; } = [];

    /// <summary>Hidden states [T + 1, B, H]; row block 0 is the zero initial state.</summary>
    protected float[] States { get; private set; } = [];

    /// <summary>Gradient with respect to the input projection, [T, B, G·H].</summary>
    protected float[] InputGateGradients { get; private set; } = [];

    /// <summary>Gradient with respect to the hidden projection, [T, B, G·H]; the same array as <see cref="InputGateGradients"/> where the two are equal (RNN, LSTM).</summary>
    protected float[] HiddenGateGradients { get; private set; } = [];

    /// <summary>Whether the two projections have distinct gradients (GRU's reset gate acts on the hidden projection only).</summary>
    protected abstract bool SeparateHiddenGradient { get; }

    private float[] _stateGradient = [];
    private float[] _previousStateGradient = [];
    private float[] _timeMajorInputGradient = [];
    private Action<int, int>? _forwardRange;
    private Action<int, int>? _backwardRange;
    private int _batch;
    private Tensor? _outputGradient;

    /// <inheritdoc/>
    public override void Allocate(int maxBatch)
    {
        int t = Steps;
        TimeMajorInput = new float[t * maxBatch * Features];
        GateValues = new float[t * maxBatch * GateWidth];
        States = new float[(t + 1) * maxBatch * Hidden];
        InputGateGradients = new float[t * maxBatch * GateWidth];
        HiddenGateGradients = SeparateHiddenGradient ? new float[t * maxBatch * GateWidth] : InputGateGradients;
        _stateGradient = new float[maxBatch * Hidden];
        _previousStateGradient = new float[maxBatch * Hidden];
        _timeMajorInputGradient = new float[t * maxBatch * Features];
        AllocateCell(maxBatch);
    }

    /// <summary>Allocates the cell's own scratch.</summary>
    protected abstract void AllocateCell(int maxBatch);

    /// <summary>Whether the hidden bias joins the input projection before the loop (RNN, LSTM) or stays with the hidden projection (GRU).</summary>
    protected abstract bool FoldHiddenBias { get; }

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training)
    {
        int batch = x.BatchSize, steps = Steps, features = Features, hidden = Hidden, width = GateWidth;
        Transpose(x.Span, TimeMajorInput, batch, steps, features);
        var gates = GateValues.AsSpan(0, steps * batch * width);
        Gemm.Multiply(false, true, steps * batch, width, features, TimeMajorInput, features, Weights[0].Span, features, gates, width, accumulate: false, Team);
        var bias = Weights[2].Span;
        var hiddenBias = Weights[3].Span;
        for (int row = 0; row < steps * batch; row++)
        {
            var g = gates.Slice(row * width, width);
            TensorPrimitives.Add(g, bias, g);
            if (FoldHiddenBias)
            {
                TensorPrimitives.Add(g, hiddenBias, g);
            }
        }
        States.AsSpan(0, batch * hidden).Clear();
        BeginSequence(batch);
        _batch = batch;
        Team.For(batch, _forwardRange ??= ForwardRange);
        var output = y.Span;
        if (Output == RecurrentOutput.Last)
        {
            States.AsSpan(steps * batch * hidden, batch * hidden).CopyTo(output);
        }
        else
        {
            Transpose(States.AsSpan(batch * hidden, steps * batch * hidden), output, steps, batch, hidden);
        }
    }

    private void ForwardRange(int first, int end)
    {
        for (int t = 0; t < Steps; t++)
        {
            ForwardStep(t, _batch, first, end);
        }
    }

    /// <summary>Resets the cell's own state before step 0 (LSTM's cell state).</summary>
    protected virtual void BeginSequence(int batch)
    {
    }

    /// <summary>
    /// Step <paramref name="t"/> for samples [<paramref name="first"/>, <paramref name="end"/>):
    /// <see cref="GateValues"/> block t holds the input projection; the step adds the hidden
    /// projection of state t, activates, and writes state t + 1.
    /// </summary>
    protected abstract void ForwardStep(int t, int batch, int first, int end);

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx)
    {
        int batch = x.BatchSize, steps = Steps, features = Features, hidden = Hidden, width = GateWidth;
        _stateGradient.AsSpan(0, batch * hidden).Clear();
        BeginBackward(batch);
        _batch = batch;
        _outputGradient = dy;
        Team.For(batch, _backwardRange ??= BackwardRange);
        int rows = steps * batch;
        var inputGates = InputGateGradients.AsSpan(0, rows * width);
        var hiddenGates = HiddenGateGradients.AsSpan(0, rows * width);
        Gemm.Multiply(true, false, width, features, rows, inputGates, width, TimeMajorInput, features, Gradients[0].Span, features, accumulate: true, Team);
        Gemm.Multiply(true, false, width, hidden, rows, hiddenGates, width, States, hidden, Gradients[1].Span, hidden, accumulate: true, Team);
        var biasGrad = Gradients[2].Span;
        var hiddenBiasGrad = Gradients[3].Span;
        for (int row = 0; row < rows; row++)
        {
            TensorPrimitives.Add(biasGrad, inputGates.Slice(row * width, width), biasGrad);
            TensorPrimitives.Add(hiddenBiasGrad, hiddenGates.Slice(row * width, width), hiddenBiasGrad);
        }
        if (dx is not null)
        {
            Gemm.Multiply(false, false, rows, features, width, inputGates, width, Weights[0].Span, features, _timeMajorInputGradient, features, accumulate: false, Team);
            Transpose(_timeMajorInputGradient.AsSpan(0, rows * features), dx.Span, steps, batch, features);
        }
    }

    private void BackwardRange(int first, int end)
    {
        int batch = _batch, steps = Steps, hidden = Hidden, width = GateWidth;
        var recurrent = Weights[1].Span;
        var gradOut = _outputGradient!.Span;
        // dL/dh_{t+1} and dL/dh_t trade places every step; rows outside [first, end) belong to other threads.
        var stateGrad = _stateGradient.AsSpan(0, batch * hidden);
        var previous = _previousStateGradient.AsSpan(0, batch * hidden);
        int rows = end - first;
        for (int t = steps - 1; t >= 0; t--)
        {
            for (int b = first; b < end; b++)
            {
                var row = stateGrad.Slice(b * hidden, hidden);
                if (Output == RecurrentOutput.Sequence)
                {
                    TensorPrimitives.Add(row, gradOut.Slice(((b * steps) + t) * hidden, hidden), row);
                }
                else if (t == steps - 1)
                {
                    gradOut.Slice(b * hidden, hidden).CopyTo(row);
                }
            }
            // The cell writes its gate gradients for step t and the part of dL/dh_t that does not
            // pass through the recurrent weights; the product with W_hh adds the rest.
            BackwardStep(t, batch, first, end, stateGrad, previous);
            if (t > 0)
            {
                Gemm.Multiply(false, false, rows, hidden, width, HiddenGateGradients.AsSpan(((t * batch) + first) * width, rows * width), width, recurrent, hidden, previous.Slice(first * hidden, rows * hidden), hidden, accumulate: true, Team);
            }
            var swap = stateGrad;
            stateGrad = previous;
            previous = swap;
        }
    }

    /// <summary>Resets the cell's own backward state before the last step (LSTM's cell-state gradient).</summary>
    protected virtual void BeginBackward(int batch)
    {
    }

    /// <summary>
    /// Step <paramref name="t"/> backwards for samples [<paramref name="first"/>, <paramref name="end"/>):
    /// from <paramref name="stateGradient"/> = dL/dh_{t+1} (every path; [B, H]), writes block t of
    /// <see cref="InputGateGradients"/> and <see cref="HiddenGateGradients"/>, and overwrites
    /// <paramref name="previousGradient"/> with the direct part of dL/dh_t (the part not through
    /// W_hh; zero for RNN and LSTM).
    /// </summary>
    protected abstract void BackwardStep(int t, int batch, int first, int end, Span<float> stateGradient, Span<float> previousGradient);

    /// <summary>Hidden state t (t = 0 is the initial state) of every sample, [B, H].</summary>
    protected Span<float> State(int t, int batch) => States.AsSpan(t * batch * Hidden, batch * Hidden);

    /// <summary>
    /// gates[first..end) += h_t[first..end) · W_hhᵀ, or = when not <paramref name="accumulate"/>:
    /// the recurrent projection of step <paramref name="t"/> for one slice of the batch, where
    /// <paramref name="gates"/> is a [B, G·H] block.
    /// </summary>
    protected void ProjectState(int t, int batch, int first, int end, Span<float> gates, bool accumulate)
    {
        int rows = end - first, h = Hidden, width = GateWidth;
        Gemm.Multiply(false, true, rows, width, h, States.AsSpan(((t * batch) + first) * h, rows * h), h, Weights[1].Span, h, gates.Slice(first * width, rows * width), width, accumulate, Team);
    }

    /// <summary>Block t of an array laid out [T, B, G·H].</summary>
    protected Span<float> GateBlock(float[] array, int t, int batch) => array.AsSpan(t * batch * GateWidth, batch * GateWidth);

    /// <summary>Swaps the two leading axes of a [d0, d1, inner] array into [d1, d0, inner].</summary>
    private static void Transpose(ReadOnlySpan<float> source, Span<float> destination, int d0, int d1, int inner)
    {
        for (int i = 0; i < d0; i++)
        {
            for (int j = 0; j < d1; j++)
            {
                source.Slice((i * d1 + j) * inner, inner).CopyTo(destination.Slice((j * d0 + i) * inner, inner));
            }
        }
    }
}
