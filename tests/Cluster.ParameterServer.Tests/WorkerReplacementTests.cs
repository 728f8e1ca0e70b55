using System.Numerics.Tensors;
using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.ParameterServer.Rules;
using Cluster.Training;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cluster.ParameterServer.Tests;

/// <summary>
/// A worker that left (dead, dropped for silence) can be replaced: a new worker joins in its place,
/// reads its shard, and a synchronous rule counts it from the next step that has not begun.
/// </summary>
public sealed class WorkerReplacementTests
{
    private static readonly OptimizerOptions Adam = new() { Name = "adam", LearningRate = 1e-3f };

    [Fact]
    public void AFullClusterTakesANewWorkerOnlyInThePlaceOfOneThatLeftAndOnlyOnce()
    {
        var options = new ServerOptions { Training = new TrainingOptions { Model = "mlp", Data = "embedded" }, Workers = 2, Mode = "sync" };
        using var run = new TrainingCoordinator(options, FashionMnist.LoadEmbedded(), NullLogger.Instance);
        var first = run.Membership.Join("a", 0).Worker!;
        var second = run.Membership.Join("b", 0).Worker!;
        Assert.Equal((0, 0, 1, 1), (first.Id, first.Shard, second.Id, second.Shard));
        Assert.Null(run.Membership.Join("c", 0).Worker);

        second.Active = false;
        run.Rule.WorkerLeft(second.Id);
        var replacement = run.Membership.Join("c", 0).Worker!;

        // A rank of its own (the departed one may yet come back and must not pass for it), the departed one's shard.
        Assert.Equal((2, 1, 1), (replacement.Id, replacement.Shard, replacement.Replaces));
        Assert.Null(run.Membership.Join("d", 0).Worker);
        Assert.Equal(2, run.Membership.ActiveCount);
    }

    [Fact]
    public async Task AReplacementJoiningDuringAStepIsCountedFromTheNextOne()
    {
        var (store, rule, initial) = Create(streaming: true, workers: 2, backupWorkers: 0);
        int chunks = store.ChunkCount;
        rule.WorkerLeft(1);
        var g0 = StreamingSyncTests.RandomGradient(store.Size, 1);
        var g1 = StreamingSyncTests.RandomGradient(store.Size, 2);
        var g2 = StreamingSyncTests.RandomGradient(store.Size, 3);

        // Step 1 is under way with worker 0 alone when worker 2 joins in worker 1's place.
        var push = rule.Open(0, 0, 0, (float[])g0.Clone(), 0.5f, 64, out _)!;
        rule.ChunkArrived(push, chunks - 1);
        rule.WorkerJoined(2);
        var pull = rule.AcquireForPullAsync(2, 0, CancellationToken.None);
        Assert.False(pull.IsCompleted);
        for (int i = chunks - 2; i >= 0; i--)
        {
            rule.ChunkArrived(push, i);
        }
        rule.Close(push);
        Assert.Equal(1, store.Version);
        // Its first weights are those the step published; from step 2 on it counts.
        var snapshot = await pull.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1, snapshot.Version);
        snapshot.Release();

        Assert.Equal(PushOutcome.Queued, rule.Submit(new Gradient(0, 1, 1, (float[])g1.Clone(), 0.5f, 64)));
        Assert.Equal(1, store.Version);
        Assert.Equal(PushOutcome.Applied, rule.Submit(new Gradient(2, 0, 1, (float[])g2.Clone(), 0.5f, 64)));
        Assert.Equal(2, store.Version);

        // Step 1 was worker 0's gradient alone, step 2 the mean of workers 0's and 2's.
        var expected = (float[])initial.Clone();
        var optimizer = Optimizer.Create(Adam, Layout);
        optimizer.Step(expected, g0);
        var mean = new float[store.Size];
        TensorPrimitives.Add(g1, g2, mean);
        TensorPrimitives.Multiply(mean, 0.5f, mean);
        optimizer.Step(expected, mean);
        var weights = new float[store.Size];
        store.CopyWeights(weights);
        Assert.Equal(expected, weights);
    }

    [Fact]
    public async Task AReplacementJoiningBetweenStepsCountsAtOnceAndOneThatLeavesBeforeItCountsIsForgotten()
    {
        var (store, rule, _) = Create(streaming: true, workers: 2, backupWorkers: 0);
        rule.WorkerLeft(1);
        rule.WorkerJoined(2);
        var snapshot = await rule.AcquireForPullAsync(2, 0, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, snapshot.Version);
        snapshot.Release();
        Assert.Equal(PushOutcome.Queued, rule.Submit(new Gradient(0, 0, 0, StreamingSyncTests.RandomGradient(store.Size, 1), 0.5f, 64)));
        Assert.Equal(PushOutcome.Applied, rule.Submit(new Gradient(2, 0, 0, StreamingSyncTests.RandomGradient(store.Size, 2), 0.5f, 64)));

        // Worker 3 joins during step 2 in worker 2's place and is gone before step 3: step 2 needs worker 0 alone.
        rule.WorkerLeft(2);
        var push = rule.Open(0, 1, 1, StreamingSyncTests.RandomGradient(store.Size, 3), 0.5f, 64, out _)!;
        rule.ChunkArrived(push, store.ChunkCount - 1);
        rule.WorkerJoined(3);
        rule.WorkerLeft(3);
        for (int i = store.ChunkCount - 2; i >= 0; i--)
        {
            rule.ChunkArrived(push, i);
        }
        rule.Close(push);
        Assert.Equal(2, store.Version);
        Assert.Equal(PushOutcome.Applied, rule.Submit(new Gradient(0, 2, 2, StreamingSyncTests.RandomGradient(store.Size, 4), 0.5f, 64)));
        Assert.Equal(3, store.Version);
    }

    [Fact]
    public void BackupWorkersStandInForWorkersThatLeftAndAReplacementRestoresTheSpare()
    {
        // 2 + 1: a step uses the first 2 gradients.
        var (store, rule, _) = Create(streaming: false, workers: 2, backupWorkers: 1);
        rule.WorkerLeft(2);
        // Two of three left: a step still needs two gradients.
        Assert.Equal(PushOutcome.Queued, rule.Submit(new Gradient(0, 0, 0, StreamingSyncTests.RandomGradient(store.Size, 1), 0.5f, 64)));
        Assert.Equal(PushOutcome.Applied, rule.Submit(new Gradient(1, 0, 0, StreamingSyncTests.RandomGradient(store.Size, 2), 0.5f, 64)));
        // One of two left: then it needs one.
        rule.WorkerLeft(1);
        Assert.Equal(PushOutcome.Applied, rule.Submit(new Gradient(0, 1, 1, StreamingSyncTests.RandomGradient(store.Size, 3), 0.5f, 64)));
        // A replacement joins between steps: two again.
        rule.WorkerJoined(3);
        Assert.Equal(PushOutcome.Queued, rule.Submit(new Gradient(3, 0, 2, StreamingSyncTests.RandomGradient(store.Size, 4), 0.5f, 64)));
        Assert.Equal(PushOutcome.Applied, rule.Submit(new Gradient(0, 2, 2, StreamingSyncTests.RandomGradient(store.Size, 5), 0.5f, 64)));
        Assert.Equal(3, store.Version);
    }

    private static IReadOnlyList<NamedParameter> Layout => new Sequential(ModelPresets.Resolve("mlp")).NamedParameters;

    private static (ParameterStore Store, ConsistencyRule Rule, float[] Initial) Create(bool streaming, int workers, int backupWorkers)
    {
        var model = new Sequential(ModelPresets.Resolve("mlp"));
        model.Initialize(3);
        var store = new ParameterStore(model.Parameters, Optimizer.Create(Adam, model.NamedParameters), Wire.ChunkLayout.ForTensors(model.NamedParameters, model.ParameterCount, 64 * 1024));
        var pool = new GradientPool(store.Size);
        ConsistencyRule rule = streaming
            ? new StreamingSyncRule(workers, store, pool, new RunRecorder())
            : new SyncRule(workers, backupWorkers, store, pool, new RunRecorder());
        return (store, rule, (float[])model.Parameters.Clone());
    }
}
