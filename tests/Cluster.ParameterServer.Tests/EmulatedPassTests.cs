using Cluster.Wire;
using Cluster.Worker;

namespace Cluster.ParameterServer.Tests;

public sealed class EmulatedPassTests
{
    private static TrainingSettings Profiled() => new()
    {
        Batch = 64,
        EmulatedComputeMs = 26,
        EmulatedForwardMs = 11,
        EmulatedChunkNeededMs = { 0.2, 10 },
        EmulatedChunkReadyMs = { 26, 12 },
    };

    [Fact]
    public void AFullBatchTakesTheMeasuredPass()
    {
        var pass = EmulatedPass.For(Profiled(), 64);
        Assert.Equal((26.0, 11.0), (pass.ComputeMs, pass.ForwardMs));
        Assert.Equal([0.2, 10], pass.NeededMs);
        Assert.Equal([26.0, 12], pass.ReadyMs);
    }

    [Fact]
    public void AShorterBatchTakesItsShareOfThePassAtEveryPoint()
    {
        // The last batch of an epoch of a 1,250-image shard: 34 images.
        var pass = EmulatedPass.For(Profiled(), 34);
        double share = 34.0 / 64;
        Assert.Equal(26 * share, pass.ComputeMs, 12);
        Assert.Equal(11 * share, pass.ForwardMs, 12);
        Assert.Equal([0.2 * share, 10 * share], pass.NeededMs);
        Assert.Equal([26 * share, 12 * share], pass.ReadyMs);
    }

    [Fact]
    public void WithoutAProfileEveryChunkIsNeededFirstAndFinalLast()
    {
        var pass = EmulatedPass.For(new TrainingSettings { Batch = 64, EmulatedComputeMs = 8 }, 16);
        Assert.Equal(2.0, pass.ComputeMs, 12);
        Assert.Empty(pass.NeededMs);
        Assert.Empty(pass.ReadyMs);
    }
}
