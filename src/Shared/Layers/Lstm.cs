using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// Long short-term memory layer, as PyTorch's <c>nn.LSTM</c> (gate blocks i, f, g, o):
/// i, f, o = σ(·), g = tanh(·) of W_ih x_t + b_ih + W_hh h_t + b_hh;
/// c_{t+1} = f ⊙ c_t + i ⊙ g; h_{t+1} = o ⊙ tanh(c_{t+1}).
/// </summary>
public sealed class Lstm(int hidden, RecurrentOutput output = RecurrentOutput.Last) : RecurrentLayer(hidden, output, gates: 4)
{
    private float[] _cells = [];
    private float[] _cellTanh = [];
    private float[] _cellGradient = [];

    /// <inheritdoc/>
    public override string Kind => "lstm";

    /// <inheritdoc/>
    protected override bool SeparateHiddenGradient => false;

    /// <inheritdoc/>
    protected override bool FoldHiddenBias => true;

    /// <inheritdoc/>
    protected override void AllocateCell(int maxBatch)
    {
        _cells = new float[(Steps + 1) * maxBatch * Hidden];
        _cellTanh = new float[Steps * maxBatch * Hidden];
        _cellGradient = new float[maxBatch * Hidden];
    }

    /// <inheritdoc/>
    protected override void BeginSequence(int batch) => _cells.AsSpan(0, batch * Hidden).Clear();

    /// <inheritdoc/>
    protected override void BeginBackward(int batch) => _cellGradient.AsSpan(0, batch * Hidden).Clear();

    /// <inheritdoc/>
    protected override void ForwardStep(int t, int batch, int first, int end)
    {
        int h = Hidden, width = GateWidth;
        var gates = GateBlock(GateValues, t, batch);
        ProjectState(t, batch, first, end, gates, accumulate: true);
        var cells = _cells.AsSpan(t * batch * h, 2 * batch * h);
        var cellTanh = _cellTanh.AsSpan(t * batch * h, batch * h);
        var next = State(t + 1, batch);
        for (int b = first; b < end; b++)
        {
            var row = gates.Slice(b * width, width);
            FastMath.Sigmoid(row[..(2 * h)], row[..(2 * h)]);
            FastMath.Tanh(row.Slice(2 * h, h), row.Slice(2 * h, h));
            FastMath.Sigmoid(row.Slice(3 * h, h), row.Slice(3 * h, h));
            var input = row[..h];
            var forget = row.Slice(h, h);
            var candidate = row.Slice(2 * h, h);
            var outputGate = row.Slice(3 * h, h);
            var previousCell = cells.Slice(b * h, h);
            var cell = cells.Slice((batch + b) * h, h);
            var tanh = cellTanh.Slice(b * h, h);
            TensorPrimitives.Multiply(forget, previousCell, cell);
            TensorPrimitives.MultiplyAdd(input, candidate, cell, cell);
            FastMath.Tanh(cell, tanh);
            TensorPrimitives.Multiply(outputGate, tanh, next.Slice(b * h, h));
        }
    }

    /// <inheritdoc/>
    protected override void BackwardStep(int t, int batch, int first, int end, Span<float> stateGradient, Span<float> previousGradient)
    {
        int h = Hidden, width = GateWidth;
        var gates = GateBlock(GateValues, t, batch);
        var grads = GateBlock(InputGateGradients, t, batch);
        var previousCells = _cells.AsSpan(t * batch * h, batch * h);
        var cellTanh = _cellTanh.AsSpan(t * batch * h, batch * h);
        var cellGrad = _cellGradient.AsSpan(0, batch * h);
        for (int b = first; b < end; b++)
        {
            var row = gates.Slice(b * width, width);
            var gradRow = grads.Slice(b * width, width);
            var dh = stateGradient.Slice(b * h, h);
            var dc = cellGrad.Slice(b * h, h);
            var c = previousCells.Slice(b * h, h);
            var tc = cellTanh.Slice(b * h, h);
            var i = row[..h];
            var f = row.Slice(h, h);
            var g = row.Slice(2 * h, h);
            var o = row.Slice(3 * h, h);
            var di = gradRow[..h];
            var df = gradRow.Slice(h, h);
            var dg = gradRow.Slice(2 * h, h);
            var dout = gradRow.Slice(3 * h, h);
            for (int j = 0; j < h; j++)
            {
                float tanh = tc[j], outGate = o[j], inGate = i[j], forget = f[j], cand = g[j];
                float cellGradient = dc[j] + dh[j] * outGate * (1f - tanh * tanh);
                dout[j] = dh[j] * tanh * outGate * (1f - outGate);
                di[j] = cellGradient * cand * inGate * (1f - inGate);
                df[j] = cellGradient * c[j] * forget * (1f - forget);
                dg[j] = cellGradient * inGate * (1f - cand * cand);
                dc[j] = cellGradient * forget;
            }
        }
        previousGradient.Slice(first * h, (end - first) * h).Clear();
    }
}
