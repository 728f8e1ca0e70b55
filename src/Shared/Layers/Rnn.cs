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
    protected override void ForwardStep(int t, int batch)
    {
        var pre = GateBlock(GateValues, t, batch);
        Gemm.Multiply(false, true, batch, Hidden, Hidden, State(t, batch), Hidden, Weights[1].Span, Hidden, pre, Hidden, accumulate: true, Team);
        TensorPrimitives.Tanh(pre, State(t + 1, batch));
    }

    /// <inheritdoc/>
    protected override void BackwardStep(int t, int batch, Span<float> stateGradient, Span<float> previousGradient)
    {
        var h = State(t + 1, batch);
        var da = GateBlock(InputGateGradients, t, batch);
        for (int i = 0; i < da.Length; i++)
        {
            da[i] = stateGradient[i] * (1f - h[i] * h[i]);
        }
        previousGradient.Clear();
    }
}
