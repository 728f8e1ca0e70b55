using Cluster.Data;
using Cluster.ParameterServer.Rules;
using Cluster.Training;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.ParameterServer.Tests;

/// <summary>A worker that dies does not hang a synchronous run: once silent too long it is dropped and the step completes without it.</summary>
public sealed class WorkerDeathTests
{
    [Fact]
    public void SilentWorkerIsDroppedAndTheSyncStepCompletes()
    {
        var options = new ServerOptions { Training = new TrainingOptions { Model = "mlp", Data = "embedded" }, Workers = 2, Mode = "sync" };
        using var run = new TrainingCoordinator(options, FashionMnist.LoadEmbedded(), NullLogger.Instance);
        var alive = run.Membership.Join("alive", run.Recorder.NowMs).Worker!;
        var dead = run.Membership.Join("dead", run.Recorder.NowMs).Worker!;

        var gradient = run.Pool.Rent();
        Array.Clear(gradient);
        Assert.Equal(PushOutcome.Queued, run.Rule.Submit(new Gradient(alive.Id, 0, 0, gradient, 1f, 64)));
        Assert.Equal(0, run.Store.Version);

        Thread.Sleep(50);
        alive.LastSeenMs = run.Recorder.NowMs;
        var dropped = run.DropSilentWorkers(silenceMs: 30);

        Assert.Equal([dead.Id], dropped);
        Assert.False(dead.Active);
        Assert.Equal(1, run.Store.Version);
    }
}
