using Cluster.Data;
using Cluster.Training;
using Cluster.Wire;
using Cluster.Worker;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;

namespace Cluster.ParameterServer.Tests;

/// <summary>
/// Pushes spread over several exchange streams (push lanes) on a sync server on loopback: the same
/// weights as one stream, bit for bit; a chunk on the wrong lane or a bad chunk on one lane refuses
/// the whole push, on every lane, and leaves the weights as they were.
/// </summary>
public sealed class PushLaneTests
{
    private const int ChunkFloats = 16 * 1024;

    private static async Task<WebApplication> StartAsync(int lanes, int workers)
    {
        var options = new ServerOptions
        {
            Training = new TrainingOptions { Model = "mlp", Data = "embedded", Epochs = 1, Optimizer = "momentum" },
            Workers = workers,
            Mode = "sync",
            Host = "127.0.0.1",
            Port = 0,
            ChunkFloats = ChunkFloats,
            PushLanes = lanes,
            WorkerTimeoutSeconds = 600,
        };
        options.Validate();
        var app = ParameterServerHost.Build(options, FashionMnist.LoadEmbedded());
        await app.StartAsync();
        return app;
    }

    /// <summary>Two workers push three steps of fixed random gradients, chunk by chunk from the last, as workers do; returns the final weights.</summary>
    private static async Task<float[]> TrainAsync(int lanes)
    {
        await using var app = await StartAsync(lanes, workers: 2);
        string address = ParameterServerHost.ListeningAddress(app);
        using var a = new ParameterClient(address);
        using var b = new ParameterClient(address);
        var joins = new[] { await a.Client.JoinAsync(new JoinRequest { WorkerName = "a" }), await b.Client.JoinAsync(new JoinRequest { WorkerName = "b" }) };
        Assert.All(joins, j => Assert.Equal(lanes, j.Settings.PushLanes));
        var layout = ParameterClient.ChunksOf(joins[0]);
        Assert.True(layout.Count > 2 * lanes, $"mlp in {layout.Count} chunks");
        var clients = new[] { a, b };
        var sessions = clients.Select(c => c.OpenExchange(layout, CancellationToken.None, joins[0].Settings.PushLanes)).ToArray();
        var weights = new float[joins[0].ParameterCount];
        var random = new Tensors.SeededRandom(5);
        for (int step = 0; step < 3; step++)
        {
            var pushes = new List<Task>();
            for (int w = 0; w < 2; w++)
            {
                var gradient = Enumerable.Range(0, weights.Length).Select(_ => random.NextGaussian() * 1e-2f).ToArray();
                var session = sessions[w];
                int worker = joins[w].WorkerId;
                long s = step;
                pushes.Add(Task.Run(async () =>
                {
                    for (int i = layout.Count - 1; i >= 0; i--)
                    {
                        await session.PushChunkAsync(worker, s, s, FloatBytes.AsBytes(gradient), i, first: i == layout.Count - 1, 0.5f, 16, CancellationToken.None);
                    }
                    await session.PushSentAsync();
                }));
            }
            await Task.WhenAll(pushes).WaitAsync(TimeSpan.FromSeconds(60));
            var pulled = await sessions[0].PullAsync(joins[0].WorkerId, step + 1, weights, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(step + 1, pulled.Version);
        }
        foreach (var session in sessions)
        {
            await session.DisposeAsync();
        }
        await app.StopAsync();
        return weights;
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public async Task PushesSpreadOverLanesGiveTheWeightsOfOneStreamBitForBit(int lanes)
    {
        var one = await TrainAsync(1);
        var spread = await TrainAsync(lanes);
        Assert.Equal(one, spread);
    }

    private static ExchangeRequest Chunk(JoinReply join, ChunkLayout layout, int index, float value)
    {
        var (_, length) = layout[index];
        var bytes = new byte[length * sizeof(float)];
        FloatBytes.AsBytes(Enumerable.Repeat(value, length).ToArray()).Span.CopyTo(bytes);
        return new ExchangeRequest
        {
            Chunk = new GradientChunk
            {
                WorkerId = join.WorkerId,
                Step = 0,
                BaseVersion = 0,
                Index = index,
                Count = layout.Count,
                Data = ByteString.CopyFrom(bytes),
                Loss = 1f,
                Samples = 16,
                Descending = true,
            },
        };
    }

    private static async Task<RpcException> RefusalOf(AsyncDuplexStreamingCall<ExchangeRequest, WeightChunk> call)
    {
        using var bounded = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(bounded.Token))
            {
            }
        });
        Assert.False(bounded.IsCancellationRequested, "the server did not end the stream within 30 s");
        return e;
    }

    /// <summary>Joins two workers (the second never pushes, so no chunk of a push is applied alone) and pulls the first weights.</summary>
    private static async Task<(JoinReply Join, ChunkLayout Layout, float[] Before)> JoinTwoAsync(ParameterClient client)
    {
        var join = await client.Client.JoinAsync(new JoinRequest { WorkerName = "a" });
        await client.Client.JoinAsync(new JoinRequest { WorkerName = "b" });
        var layout = ParameterClient.ChunksOf(join);
        var before = new float[join.ParameterCount];
        await client.PullAsync(join.WorkerId, 0, before, layout, CancellationToken.None);
        return (join, layout, before);
    }

    private static async Task AssertWeightsUntouchedAsync(ParameterClient client, JoinReply join, ChunkLayout layout, float[] before)
    {
        var after = new float[join.ParameterCount];
        var pulled = await client.PullAsync(join.WorkerId, 0, after, layout, CancellationToken.None);
        Assert.Equal(0, pulled.Version);
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task AChunkOnTheWrongLaneIsRefusedAndTheWeightsAreUntouched()
    {
        await using var app = await StartAsync(lanes: 2, workers: 2);
        using var client = new ParameterClient(ParameterServerHost.ListeningAddress(app));
        var (join, layout, before) = await JoinTwoAsync(client);

        using var lane = client.Client.Exchange();
        int last = layout.Count - 1;
        // Sending positions 0 and 1 on one stream: position 1 belongs on the other lane.
        await lane.RequestStream.WriteAsync(Chunk(join, layout, last, 0.1f));
        await lane.RequestStream.WriteAsync(Chunk(join, layout, last - 1, 0.1f));
        var e = await RefusalOf(lane);

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains($"chunk {last - 1} arrived where chunk {last - 2} was expected (out of order)", e.Status.Detail);
        await AssertWeightsUntouchedAsync(client, join, layout, before);
    }

    [Fact]
    public async Task ABadChunkOnOneLaneRefusesThePushOnTheOthers()
    {
        await using var app = await StartAsync(lanes: 2, workers: 2);
        using var client = new ParameterClient(ParameterServerHost.ListeningAddress(app));
        var (join, layout, before) = await JoinTwoAsync(client);

        using var lane0 = client.Client.Exchange();
        using var lane1 = client.Client.Exchange();
        int last = layout.Count - 1;
        await lane0.RequestStream.WriteAsync(Chunk(join, layout, last, 0.1f));
        await lane1.RequestStream.WriteAsync(Chunk(join, layout, last - 1, float.NaN));
        var bad = await RefusalOf(lane1);
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
        Assert.Contains("NaN or Inf", bad.Status.Detail);

        // The push's next chunk on the good lane belongs to a push already refused. (If the bad
        // chunk overtook the good lane's first one, the server has ended that lane already.)
        try
        {
            await lane0.RequestStream.WriteAsync(Chunk(join, layout, last - 2, 0.1f));
        }
        catch (RpcException)
        {
        }
        var dropped = await RefusalOf(lane0);
        Assert.Equal(StatusCode.Aborted, dropped.StatusCode);
        Assert.Contains("was refused on another of its streams", dropped.Status.Detail);

        await AssertWeightsUntouchedAsync(client, join, layout, before);
    }
}
