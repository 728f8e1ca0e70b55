using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// Elman recurrent layer, as PyTorch's <c>nn.RNN</c> with tanh:
/// h_{t+1} = tanh(W_ih x_t + b_ih + W_hh h_t + b_hh). Backward: da = dh ⊙ (1 − h²).
/// </summary>
public sealed class Rnn(int hidden, RecurrentOutput output = RecurrentOutput.Last) : RecurrentLayer(hidden, output, gates: 1)
{
    /// <inheritdoc/>
    public override string Kind => "rnn";

    /// <inheritdoc/>
    protected override bool SeparateHiddenGradient => false;

    /// <inheritdoc/>
    protected override bool FoldHiddenBias => true;

    /// <inheritdoc/>
    protected override void AllocateCell(int maxBatch)
    {
    }

    /// <inheritdoc/>
    protected override void ForwardStep(int t, int batch, int first, int end)
    {
        var pre = GateBlock(GateValues, t, batch);
        ProjectState(t, batch, first, end, pre, accumulate: true);
        int h = Hidden;
        FastMath.Tanh(pre.Slice(first * h, (end - first) * h), State(t + 1, batch).Slice(first * h, (end - first) * h));
    }

    /// <inheritdoc/>
    protected override void BackwardStep(int t, int batch, int first, int end, Span<float> stateGradient, Span<float> previousGradient)
    {
        int from = first * Hidden, length = (end - first) * Hidden;
        var h = State(t + 1, batch).Slice(from, length);
        var da = GateBlock(InputGateGradients, t, batch).Slice(from, length);
        var dh = stateGradient.Slice(from, length);
        for (int i = 0; i < da.Length; i++)
        {
            da[i] = dh[i] * (1f - (h[i] * h[i]));
        }
        previousGradient.Slice(from, length).Clear();
    }
}
