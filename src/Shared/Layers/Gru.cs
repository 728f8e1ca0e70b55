using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// Gated recurrent unit layer, as PyTorch's <c>nn.GRU</c> (gate blocks r, z, n):
/// r, z = σ(W_i· x_t + b_i· + W_h· h_t + b_h·); n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_t + b_hn));
/// h_{t+1} = (1 − z) ⊙ n + z ⊙ h_t.
/// </summary>
public sealed class Gru(int hidden, RecurrentOutput output = RecurrentOutput.Last) : RecurrentLayer(hidden, output, gates: 3)
{
    private float[] _hiddenProjection = [];
    private float[] _candidateProjections = [];

    /// <inheritdoc/>
    public override string Kind => "gru";

    /// <inheritdoc/>
    protected override bool SeparateHiddenGradient => true;

    /// <inheritdoc/>
    protected override bool FoldHiddenBias => false;

    /// <inheritdoc/>
    protected override void AllocateCell(int maxBatch)
    {
        _hiddenProjection = new float[maxBatch * GateWidth];
        _candidateProjections = new float[Steps * maxBatch * Hidden];
    }

    /// <inheritdoc/>
    protected override void ForwardStep(int t, int batch, int first, int end)
    {
        int h = Hidden, width = GateWidth;
        var gates = GateBlock(GateValues, t, batch);
        var projection = _hiddenProjection.AsSpan(0, batch * width);
        ProjectState(t, batch, first, end, projection, accumulate: false);
        var hiddenBias = Weights[3].Span;
        var candidates = _candidateProjections.AsSpan(t * batch * h, batch * h);
        var previous = State(t, batch);
        var next = State(t + 1, batch);
        for (int b = first; b < end; b++)
        {
            var row = gates.Slice(b * width, width);
            var hp = projection.Slice(b * width, width);
            TensorPrimitives.Add(hp, hiddenBias, hp);
            var resetUpdate = row[..(2 * h)];
            TensorPrimitives.Add(resetUpdate, hp[..(2 * h)], resetUpdate);
            FastMath.Sigmoid(resetUpdate, resetUpdate);
            var candidateProjection = candidates.Slice(b * h, h);
            hp.Slice(2 * h, h).CopyTo(candidateProjection);
            var n = row.Slice(2 * h, h);
            TensorPrimitives.MultiplyAdd(row[..h], candidateProjection, n, n);
            FastMath.Tanh(n, n);
            var output = next.Slice(b * h, h);
            TensorPrimitives.Subtract(previous.Slice(b * h, h), n, output);
            TensorPrimitives.MultiplyAdd(row.Slice(h, h), output, n, output);
        }
    }

    /// <inheritdoc/>
    protected override void BackwardStep(int t, int batch, int first, int end, Span<float> stateGradient, Span<float> previousGradient)
    {
        int h = Hidden, width = GateWidth;
        var gates = GateBlock(GateValues, t, batch);
        var inputGrads = GateBlock(InputGateGradients, t, batch);
        var hiddenGrads = GateBlock(HiddenGateGradients, t, batch);
        var candidates = _candidateProjections.AsSpan(t * batch * h, batch * h);
        var previous = State(t, batch);
        for (int b = first; b < end; b++)
        {
            var row = gates.Slice(b * width, width);
            var dx = inputGrads.Slice(b * width, width);
            var dhp = hiddenGrads.Slice(b * width, width);
            var dh = stateGradient.Slice(b * h, h);
            var direct = previousGradient.Slice(b * h, h);
            var hPrev = previous.Slice(b * h, h);
            var hn = candidates.Slice(b * h, h);
            var r = row[..h];
            var z = row.Slice(h, h);
            var n = row.Slice(2 * h, h);
            for (int j = 0; j < h; j++)
            {
                float reset = r[j], update = z[j], cand = n[j], grad = dh[j];
                float dn = grad * (1f - update) * (1f - cand * cand);
                float dr = dn * hn[j] * reset * (1f - reset);
                float dz = grad * (hPrev[j] - cand) * update * (1f - update);
                dx[j] = dr;
                dx[h + j] = dz;
                dx[2 * h + j] = dn;
                dhp[j] = dr;
                dhp[h + j] = dz;
                dhp[2 * h + j] = dn * reset;
                direct[j] = grad * update;
            }
        }
    }
}
