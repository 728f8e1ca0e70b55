namespace Cluster.Tests.Golden;

/// <summary>LSTM, GRU and tanh RNN layers (last step, every step, stacked) against PyTorch's nn.LSTM, nn.GRU and nn.RNN.</summary>
public sealed class GoldenRecurrentTests
{
    public static TheoryData<string> RecurrentCases => GoldenTests.LayerNames("recurrent");

    [Theory]
    [MemberData(nameof(RecurrentCases))]
    public void Recurrent_layer_matches_PyTorch(string name) => GoldenNetwork.Check(GoldenTests.Layer("recurrent", name));
}
