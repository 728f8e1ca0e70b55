using Cluster.Data;
using Cluster.Wire;
using Cluster.Worker;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;

namespace Cluster.ParameterServer.Tests;

/// <summary>
/// Bad pushes against a real server on loopback: each is refused with a precise gRPC status and
/// message, counted, and the weights stay exactly as they were.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "xunit disposes it through IAsyncLifetime.DisposeAsync")]
public sealed class ServiceValidationTests : IAsyncLifetime
{
    private WebApplication? _app;
    private ParameterClient? _client;
    private int _worker;
    private float[] _initial = [];
    private ChunkLayout _layout = ChunkLayout.Uniform(1, 1);
    private int _size;
    private const int ChunkFloats = 64 * 1024;

    public async Task InitializeAsync()
    {
        var options = LoopbackServer.Options(workers: 1, mode: "async") with { ChunkFloats = ChunkFloats };
        options.Validate();
        _app = ParameterServerHost.Build(options, FashionMnist.LoadEmbedded());
        await _app.StartAsync();
        _client = new ParameterClient(ParameterServerHost.ListeningAddress(_app));
        var join = await _client.Client.JoinAsync(new JoinRequest { WorkerName = "test" });
        _worker = join.WorkerId;
        _size = join.ParameterCount;
        _layout = ParameterClient.ChunksOf(join);
        _initial = new float[_size];
        await _client.PullAsync(_worker, 0, _initial, _layout, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        _client?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    private int Chunks => _layout.Count;

    private GradientChunk Chunk(int index, float[] values, long baseVersion = 0, int? worker = null, int? count = null, int? floats = null)
    {
        var (offset, full) = _layout[index];
        int length = floats ?? full;
        var bytes = new byte[length * sizeof(float)];
        Buffer.BlockCopy(values, offset * sizeof(float), bytes, 0, Math.Min(bytes.Length, (values.Length - offset) * sizeof(float)));
        return new GradientChunk
        {
            WorkerId = worker ?? _worker,
            Step = 1,
            BaseVersion = baseVersion,
            Index = index,
            Count = count ?? Chunks,
            Data = ByteString.CopyFrom(bytes),
            Loss = index == 0 ? 1f : 0f,
            Samples = index == 0 ? 64 : 0,
        };
    }

    private async Task<RpcException> PushExpectingFailure(IEnumerable<GradientChunk> chunks)
    {
        using var call = _client!.Client.Push();
        try
        {
            foreach (var chunk in chunks)
            {
                await call.RequestStream.WriteAsync(chunk);
            }
            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            // The server may fail the call while chunks are still being written.
        }
        return await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseAsync);
    }

    private async Task AssertWeightsUntouched()
    {
        var now = new float[_size];
        var pulled = await _client!.PullAsync(_worker, 0, now, _layout, CancellationToken.None);
        Assert.Equal(0, pulled.Version);
        Assert.Equal(_initial, now);
    }

    private float[] Gradient(float value = 0.01f) => Enumerable.Repeat(value, _size).ToArray();

    [Fact]
    public async Task WrongLengthIsInvalidArgument()
    {
        var e = await PushExpectingFailure([Chunk(0, Gradient(), floats: 100)]);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("bytes; expected", e.Status.Detail);
        await AssertWeightsUntouched();
    }

    [Theory]
    [InlineData(-1.0, 10)]
    [InlineData(double.NaN, 10)]
    [InlineData(5.0, -2)]
    public async Task ATimeSplitThatCannotBeIsInvalidArgument(double computeMs, long steps)
    {
        var g = Gradient();
        var first = Chunk(0, g);
        first.Time = new TimeSplit { ComputeMs = computeMs, PushMs = 1, PullMs = 1, WaitMs = 0, Steps = steps, Samples = 640 };
        var e = await PushExpectingFailure([first, .. Enumerable.Range(1, Chunks - 1).Select(i => Chunk(i, g))]);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("reports a time split", e.Status.Detail);
        await AssertWeightsUntouched();
    }

    [Fact]
    public async Task ChunkOutOfOrderIsInvalidArgument()
    {
        var g = Gradient();
        var e = await PushExpectingFailure([Chunk(1, g), Chunk(0, g)]);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("out of order", e.Status.Detail);
        await AssertWeightsUntouched();
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public async Task NonFiniteGradientIsInvalidArgument(float bad)
    {
        var g = Gradient();
        g[_size - 3] = bad;
        var e = await PushExpectingFailure(Enumerable.Range(0, Chunks).Select(i => Chunk(i, g)));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("NaN or Inf", e.Status.Detail);
        await AssertWeightsUntouched();
    }

    [Fact]
    public async Task WrongLengthInALaterChunkIsInvalidArgument()
    {
        var g = Gradient();
        var e = await PushExpectingFailure([Chunk(0, g), Chunk(1, g, floats: 100)]);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("chunk 1 holds 400 bytes; expected", e.Status.Detail);
        await AssertWeightsUntouched();
    }

    [Fact]
    public async Task UnknownWorkerIsNotFound()
    {
        var e = await PushExpectingFailure([Chunk(0, Gradient(), worker: 42)]);
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Contains("worker 42", e.Status.Detail);
        await AssertWeightsUntouched();
    }

    [Fact]
    public async Task VersionFromTheFutureIsFailedPrecondition()
    {
        var e = await PushExpectingFailure([Chunk(0, Gradient(), baseVersion: 99)]);
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("version from the future", e.Status.Detail);
        await AssertWeightsUntouched();
    }

    [Fact]
    public async Task TruncatedPushIsInvalidArgumentAndCounted()
    {
        var e = await PushExpectingFailure([Chunk(0, Gradient())]);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains($"after 1 of {Chunks} chunks", e.Status.Detail);
        var status = await _client!.Client.StatusAsync(new StatusRequest());
        Assert.Equal(1, status.RejectedPushes);
        await AssertWeightsUntouched();
    }

    [Fact]
    public async Task PulledChunksAreParsedStraightIntoTheWeights()
    {
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(ParameterServerHost.ListeningAddress(_app!));
        using var call = channel.CreateCallInvoker().AsyncServerStreamingCall(WireMethods.Worker.Pull, null, new CallOptions(), new PullRequest { WorkerId = _worker });
        var weights = new float[_size];
        var received = new bool[_layout.Count];
        WeightSink.Current = new WeightSink(weights, _layout, received);
        int inSink = 0;
        for (int n = 0; n < _layout.Count && await call.ResponseStream.MoveNext(CancellationToken.None); n++)
        {
            using var chunk = call.ResponseStream.Current;
            inSink += chunk.InSink && chunk.Data.IsEmpty ? 1 : 0;
            received[chunk.Index] = true;
        }
        WeightSink.Current = null;

        // The sink set in this flow reaches the parser inside gRPC's MoveNext: no chunk took the pooled copy.
        Assert.Equal(_layout.Count, inSink);
        Assert.Equal(_initial, weights);
    }

    [Fact]
    public async Task AValidPushIsAppliedAndVersioned()
    {
        var g = Gradient();
        var reply = await _client!.PushAsync(_worker, 1, 0, FloatBytes.AsBytes(g), _layout, 1f, 64, CancellationToken.None);
        Assert.Equal("applied", reply.Outcome);
        Assert.Equal(1, reply.Version);
        var now = new float[_size];
        await _client.PullAsync(_worker, 0, now, _layout, CancellationToken.None);
        // Adam's first step moves every weight by about lr against the gradient's sign.
        Assert.All(Enumerable.Range(0, _size).Where(i => i % 9973 == 0), i => Assert.Equal(_initial[i] - 1e-3f, now[i], 1e-5f));
    }

    [Fact]
    public async Task ExchangeCarriesPullsAndPushesOnOneStream()
    {
        await using var exchange = _client!.OpenExchange(_layout, CancellationToken.None);
        var weights = new float[_size];
        var first = await exchange.PullAsync(_worker, 0, weights, CancellationToken.None);
        Assert.Equal(0, first.Version);
        await exchange.PushAsync(_worker, 1, first.Version, FloatBytes.AsBytes(Gradient()), 1f, 64, CancellationToken.None);
        var second = await exchange.PullAsync(_worker, 0, weights, CancellationToken.None);
        Assert.Equal(1, second.Version);
        // The first chunk of a push is copied off the wire, the others straight into the gradient (GradientSink): both applied.
        Assert.Equal(_initial[0] - 1e-3f, weights[0], 1e-5f);
        Assert.Equal(_initial[_size - 1] - 1e-3f, weights[_size - 1], 1e-5f);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.NegativeInfinity)]
    public async Task ExchangeRefusesANonFiniteValueInALaterChunk(float bad)
    {
        await using var exchange = _client!.OpenExchange(_layout, CancellationToken.None);
        var weights = new float[_size];
        await exchange.PullAsync(_worker, 0, weights, CancellationToken.None);
        var g = Gradient();
        g[_size - 1] = bad;
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await exchange.PushAsync(_worker, 1, 0, FloatBytes.AsBytes(g), 1f, 64, CancellationToken.None);
            await exchange.PullAsync(_worker, 0, weights, CancellationToken.None);
        });
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains($"chunk {Chunks - 1} holds NaN or Inf", e.Status.Detail);
        await AssertWeightsUntouched();
    }

    [Fact]
    public async Task ExchangeRefusesANonFiniteGradient()
    {
        await using var exchange = _client!.OpenExchange(_layout, CancellationToken.None);
        var weights = new float[_size];
        await exchange.PullAsync(_worker, 0, weights, CancellationToken.None);
        var g = Gradient();
        g[7] = float.NaN;
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await exchange.PushAsync(_worker, 1, 0, FloatBytes.AsBytes(g), 1f, 64, CancellationToken.None);
            await exchange.PullAsync(_worker, 0, weights, CancellationToken.None);
        });
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("NaN or Inf", e.Status.Detail);
        await AssertWeightsUntouched();
    }

    [Fact]
    public async Task DescendingPushIsAppliedAndOutOfOrderDescendingIsRefused()
    {
        await using var exchange = _client!.OpenExchange(_layout, CancellationToken.None);
        var weights = new float[_size];
        var bytes = FloatBytes.AsBytes(Gradient());
        await exchange.PullAsync(_worker, 0, weights, CancellationToken.None);
        for (int i = Chunks - 1; i >= 0; i--)
        {
            await exchange.PushChunkAsync(_worker, 1, 0, bytes, i, first: i == Chunks - 1, 1f, 64, CancellationToken.None);
        }
        var pulled = await exchange.PullAsync(_worker, 0, weights, CancellationToken.None);
        Assert.Equal(1, pulled.Version);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await exchange.PushChunkAsync(_worker, 2, 1, bytes, Chunks - 1, first: true, 1f, 64, CancellationToken.None);
            await exchange.PushChunkAsync(_worker, 2, 1, bytes, 0, first: false, 1f, 64, CancellationToken.None);
            await exchange.PullAsync(_worker, 0, weights, CancellationToken.None);
        });
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("out of order", e.Status.Detail);
    }
}
