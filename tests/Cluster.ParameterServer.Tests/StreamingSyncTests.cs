using System.Runtime.InteropServices;
using Cluster.Models;
using Cluster.Optim;
using Cluster.ParameterServer.Rules;

namespace Cluster.ParameterServer.Tests;

/// <summary>
/// Sync SGD applied chunk by chunk as the gradients stream in: each chunk of the next version is
/// final, and sent, as soon as every worker's gradient for it is in; the result is bit for bit the
/// whole-step update, and a push refused halfway never reaches the weights.
/// </summary>
public sealed class StreamingSyncTests
{
    private const int ChunkFloats = 64 * 1024;
    private static readonly OptimizerOptions Adam = new() { Name = "adam", LearningRate = 1e-3f, WeightDecay = 1e-4f };

    private static (ParameterStore Store, GradientPool Pool, ConsistencyRule Rule) Create(bool streaming, int workers = 2)
    {
        var model = new Sequential(ModelPresets.Resolve("mlp"));
        model.Initialize(3);
        var store = new ParameterStore(model.Parameters, Optimizer.Create(Adam, model.NamedParameters), Wire.ChunkLayout.ForTensors(model.NamedParameters, model.ParameterCount, ChunkFloats));
        var pool = new GradientPool(store.Size);
        var recorder = new RunRecorder();
        ConsistencyRule rule = streaming ? new StreamingSyncRule(workers, store, pool, recorder) : new SyncRule(workers, 0, store, pool, recorder);
        return (store, pool, rule);
    }

    internal static float[] RandomGradient(int size, ulong seed)
    {
        var random = new Tensors.SeededRandom(seed);
        var g = new float[size];
        foreach (ref float v in g.AsSpan())
        {
            v = random.NextGaussian() * 0.1f;
        }
        return g;
    }

    private static float[] Weights(ParameterStore store)
    {
        var w = new float[store.Size];
        store.CopyWeights(w);
        return w;
    }

    [Fact]
    public async Task EachChunkOfTheNextVersionIsSentOnceEveryWorkersChunkIsIn()
    {
        var (store, pool, rule) = Create(streaming: true);
        Assert.True(rule.TakesChunks);
        int chunks = store.ChunkCount;
        Assert.True(chunks >= 3, $"mlp is {store.Size} floats: {chunks} chunks");
        var pull = rule.AcquireForPullAsync(0, 1, CancellationToken.None);
        Assert.False(pull.IsCompleted);

        var a = rule.Open(0, 0, 0, RandomGradient(store.Size, 1), 0.5f, 64, out _)!;
        var b = rule.Open(1, 0, 0, RandomGradient(store.Size, 2), 0.7f, 64, out _)!;
        var snapshot = await pull.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1, snapshot.Version);

        // The last chunk arrives from both workers: chunk count-1 of version 1 is final and sent.
        rule.ChunkArrived(a, chunks - 1);
        var queue = new WeightSnapshot.ChunkQueue();
        var first = snapshot.NextChunkAsync(queue, CancellationToken.None).AsTask();
        Assert.False(first.IsCompleted, "one worker's chunk is not enough");
        rule.ChunkArrived(b, chunks - 1);
        Assert.Equal(chunks - 1, await first.WaitAsync(TimeSpan.FromSeconds(5)));
        var second = snapshot.NextChunkAsync(queue, CancellationToken.None).AsTask();
        Assert.False(second.IsCompleted, "nothing else is final yet");
        Assert.Equal(0, store.Version);

        for (int i = chunks - 2; i >= 0; i--)
        {
            rule.ChunkArrived(b, i);
            rule.ChunkArrived(a, i);
            if (i == chunks - 2)
            {
                Assert.Equal(chunks - 2, await second.WaitAsync(TimeSpan.FromSeconds(5)));
            }
        }
        Assert.Equal(1, store.Version);
        Assert.Equal(PushOutcome.Applied, rule.Close(a));
        Assert.Equal(PushOutcome.Applied, rule.Close(b));
        // The rest became final (last layers first) while the sender was busy: the first layers,
        // which forward needs first, go first.
        for (int i = 0; i < chunks - 2; i++)
        {
            Assert.Equal(i, await snapshot.NextChunkAsync(queue, CancellationToken.None));
        }
        Assert.False(snapshot.NextChunkAsync(queue, CancellationToken.None).AsTask().IsCompleted, "every chunk was sent once");
        Assert.Equal(Weights(store), MemoryMarshal.Cast<byte, float>(snapshot.Bytes).ToArray());
        snapshot.Release();
    }

    [Fact]
    public void ChunkByChunkStepsEqualWholeStepsBitForBit()
    {
        var (streamingStore, _, streaming) = Create(streaming: true, workers: 3);
        var (wholeStore, _, whole) = Create(streaming: false, workers: 3);
        for (int step = 0; step < 3; step++)
        {
            // Arrival order differs from rank order; sums are in rank order either way.
            foreach (int worker in new[] { 2, 0, 1 })
            {
                var g = RandomGradient(streamingStore.Size, (ulong)(10 * step + worker));
                streaming.Submit(new Gradient(worker, step, step, g, 0.5f, 32));
                whole.Submit(new Gradient(worker, step, step, (float[])g.Clone(), 0.5f, 32));
            }
        }
        Assert.Equal(3, streamingStore.Version);
        Assert.Equal(Weights(wholeStore), Weights(streamingStore));
    }

    [Fact]
    public void APushRefusedHalfwayNeverReachesTheWeights()
    {
        var (store, _, rule) = Create(streaming: true);
        var (reference, _, alone) = Create(streaming: true, workers: 1);
        int chunks = store.ChunkCount;
        var good = RandomGradient(store.Size, 7);
        var bad = rule.Open(1, 0, 0, RandomGradient(store.Size, 8), 0.5f, 64, out _)!;
        rule.ChunkArrived(bad, chunks - 1);
        rule.ChunkArrived(bad, chunks - 2);
        // Its next chunk held NaN: the push is refused and taken out.
        rule.Abandon(bad);

        Assert.Equal(PushOutcome.Queued, rule.Submit(new Gradient(0, 0, 0, (float[])good.Clone(), 0.5f, 64)));
        Assert.Equal(0, store.Version);
        // The refused worker is then gone: the step completes with the good gradient alone.
        rule.WorkerLeft(1);
        Assert.Equal(1, store.Version);

        alone.Submit(new Gradient(0, 0, 0, good, 0.5f, 64));
        Assert.Equal(Weights(reference), Weights(store));
    }

    [Fact]
    public async Task WhenTheRunEndsDuringAStepWaitingPullsAreReleased()
    {
        var (store, _, rule) = Create(streaming: true);
        var a = rule.Open(0, 0, 0, RandomGradient(store.Size, 1), 0.5f, 64, out _)!;
        var snapshot = await rule.AcquireForPullAsync(1, 1, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        var waiting = snapshot.NextChunkAsync(new WeightSnapshot.ChunkQueue(), CancellationToken.None).AsTask();

        rule.Finish();

        Assert.Equal(-1, await waiting.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(0, store.Version);
        rule.Abandon(a);
        snapshot.Release();
    }
}

/// <summary>A sync server on loopback: a worker that stops with a pull still waiting is let go at once.</summary>
public sealed class StreamingSyncServiceTests
{
    [Fact]
    public async Task AWorkerLeavingWithAPullStillWaitingIsNotHeldBack()
    {
        var options = LoopbackServer.Options(workers: 1, mode: "sync");
        options.Validate();
        await using var app = ParameterServerHost.Build(options, Data.FashionMnist.LoadEmbedded());
        await app.StartAsync();
        using var client = new Worker.ParameterClient(ParameterServerHost.ListeningAddress(app));
        var join = await client.Client.JoinAsync(new Wire.JoinRequest { WorkerName = "test" });
        var weights = new float[join.ParameterCount];
        var exchange = client.OpenExchange(Worker.ParameterClient.ChunksOf(join), CancellationToken.None);
        var first = await exchange.PullAsync(join.WorkerId, 0, weights, CancellationToken.None);
        // Version 1 needs this worker's gradient, which never comes: the pull waits.
        var next = await exchange.BeginPullAsync(join.WorkerId, first.Version + 1, weights, CancellationToken.None);
        Assert.False(next.Reading.IsCompleted);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await exchange.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(4), $"closing the stream took {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(next.Reading.IsCompleted);
        await app.StopAsync();
    }
}
