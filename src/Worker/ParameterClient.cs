using System.Diagnostics;
using System.Net.Http;
using Cluster.Wire;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Cluster.Worker;

/// <summary>Result of one pull.</summary>
/// <param name="Version">The version received.</param>
/// <param name="Finished">The run is over.</param>
/// <param name="WaitedMs">Time the server held the pull back for the consistency rule.</param>
public readonly record struct PullResult(long Version, bool Finished, double WaitedMs);

/// <summary>
/// The worker's side of the wire: pulls weights and pushes gradients as chunked streams. The
/// gradient buffer is wrapped once as bytes and sliced per chunk, so a push copies nothing before
/// gRPC's own send buffer; pulled chunks are read by hand (<see cref="WireMethods.Worker"/>) into
/// pooled buffers and copied into the weights.
/// </summary>
public sealed class ParameterClient : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly CallInvoker _invoker;

    /// <summary>Connects (lazily) to <paramref name="address"/> with HTTP/2 windows sized for whole-model transfers.</summary>
    public ParameterClient(string address, int maxMessageBytes = 8 * 1024 * 1024)
    {
        var handler = new SocketsHttpHandler
        {
            InitialHttp2StreamWindowSize = 16 * 1024 * 1024,
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            ConnectTimeout = TimeSpan.FromSeconds(5),
        };
        _channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = maxMessageBytes,
            MaxSendMessageSize = maxMessageBytes,
        });
        _invoker = _channel.CreateCallInvoker();
        Client = new Wire.ParameterServer.ParameterServerClient(_invoker);
    }

    /// <summary>The generated stub, for the small calls.</summary>
    public Wire.ParameterServer.ParameterServerClient Client { get; }

    /// <summary>Pulls the weights into <paramref name="weights"/> with one Pull call.</summary>
    public async Task<PullResult> PullAsync(int worker, long minVersion, float[] weights, CancellationToken cancel)
    {
        using var call = _invoker.AsyncServerStreamingCall(WireMethods.Worker.Pull, null, new CallOptions(cancellationToken: cancel), new PullRequest { WorkerId = worker, MinVersion = minVersion });
        return await ReadWeightsAsync(call.ResponseStream, weights, ChunkFlags(weights), cancel).ConfigureAwait(false);
    }

    /// <summary>Pushes <paramref name="gradientBytes"/> (a float buffer wrapped by <see cref="FloatBytes.AsBytes"/>) in chunks with one Push call.</summary>
    public async Task<PushReply> PushAsync(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, int chunkFloats, float loss, int samples, CancellationToken cancel)
    {
        using var call = Client.Push(cancellationToken: cancel);
        foreach (var chunk in Chunks(worker, step, baseVersion, gradientBytes, chunkFloats, loss, samples))
        {
            await call.RequestStream.WriteAsync(chunk, cancel).ConfigureAwait(false);
        }
        await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        return await call.ResponseAsync.ConfigureAwait(false);
    }

    /// <summary>Opens the worker's long-lived exchange stream (pulls and pushes without a call each).</summary>
    public ExchangeSession OpenExchange(CancellationToken cancel) =>
        new(_invoker.AsyncDuplexStreamingCall(WireMethods.Worker.Exchange, null, new CallOptions(cancellationToken: cancel)));

    /// <summary>
    /// Reads one pull's chunks (as many as the first announces, each once, in any order: a version
    /// still being built arrives in the order its chunks became final) into <paramref name="weights"/>.
    /// <paramref name="received"/> is scratch space, grown when needed.
    /// </summary>
    internal static async Task<PullResult> ReadWeightsAsync(IAsyncStreamReader<ReceivedWeightChunk> reader, float[] weights, bool[] received, CancellationToken cancel)
    {
        int got = 0, count = 1, chunkFloats = 0;
        long version = -1;
        bool finished = false;
        double waited = 0;
        while (got < count && await reader.MoveNext(cancel).ConfigureAwait(false))
        {
            using var chunk = reader.Current;
            int floats = chunk.Data.Length / sizeof(float);
            if (got == 0)
            {
                count = chunk.Count;
                if (count < 1 || count > received.Length)
                {
                    throw new InvalidDataException($"pull: {count} chunks announced; a model of {weights.Length} floats takes 1 to {received.Length}");
                }
                Array.Clear(received, 0, count);
                // Every chunk but the last is full, so any one of them gives the chunk size.
                chunkFloats = chunk.Index < count - 1 ? floats : count == 1 ? weights.Length : (weights.Length - floats) / (count - 1);
            }
            long offset = (long)chunk.Index * chunkFloats;
            if (chunk.Index < 0 || chunk.Index >= count || chunk.Count != count || received[chunk.Index] || chunk.Data.Length % sizeof(float) != 0
                || chunkFloats < 1 || offset >= weights.Length || floats != Math.Min(chunkFloats, weights.Length - offset))
            {
                throw new InvalidDataException($"pull: chunk {chunk.Index} of {chunk.Count} ({chunk.Data.Length} bytes) does not fit a model of {weights.Length} floats in {count} chunks, or came twice");
            }
            FloatBytes.CopyTo(chunk.Data, weights.AsSpan((int)offset, floats));
            received[chunk.Index] = true;
            got++;
            version = chunk.Version;
            finished |= chunk.Finished;
            waited += chunk.WaitedMs;
        }
        if (got != count)
        {
            throw new InvalidDataException($"pull: received {got} of {count} chunks");
        }
        return new PullResult(version, finished, waited);
    }

    /// <summary>Scratch space for <see cref="ReadWeightsAsync"/>: a flag per chunk, for chunks of at least 1,024 floats.</summary>
    internal static bool[] ChunkFlags(float[] weights) => new bool[Math.Max(1, (weights.Length + 1023) / 1024)];

    /// <summary>The chunks of one push, in ascending order; the gradient's bytes are sliced, not copied.</summary>
    internal static IEnumerable<GradientChunk> Chunks(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, int chunkFloats, float loss, int samples)
    {
        int count = ChunkCount(gradientBytes, chunkFloats);
        for (int i = 0; i < count; i++)
        {
            yield return Chunk(worker, step, baseVersion, gradientBytes, chunkFloats, i, first: i == 0, loss, samples, descending: false);
        }
    }

    /// <summary>Chunks in a gradient of <paramref name="gradientBytes"/>.</summary>
    internal static int ChunkCount(ReadOnlyMemory<byte> gradientBytes, int chunkFloats) =>
        (gradientBytes.Length + chunkFloats * sizeof(float) - 1) / (chunkFloats * sizeof(float));

    /// <summary>Chunk <paramref name="index"/> of a push; the first one sent carries the loss, the sample count and the order.</summary>
    internal static GradientChunk Chunk(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, int chunkFloats, int index, bool first, float loss, int samples, bool descending)
    {
        int chunkBytes = chunkFloats * sizeof(float);
        int offset = index * chunkBytes;
        return new GradientChunk
        {
            WorkerId = worker,
            Step = step,
            BaseVersion = baseVersion,
            Index = index,
            Count = ChunkCount(gradientBytes, chunkFloats),
            Data = UnsafeByteOperations.UnsafeWrap(gradientBytes.Slice(offset, Math.Min(chunkBytes, gradientBytes.Length - offset))),
            Loss = first ? loss : 0,
            Samples = first ? samples : 0,
            Descending = descending,
        };
    }

    /// <inheritdoc/>
    public void Dispose() => _channel.Dispose();
}

/// <summary>
/// A worker's long-lived exchange stream: pulls and pushes travel on one HTTP/2 stream for the
/// whole run, so a step costs no call setup, headers or trailers.
/// </summary>
public sealed class ExchangeSession(AsyncDuplexStreamingCall<ExchangeRequest, ReceivedWeightChunk> call) : IAsyncDisposable
{
    private bool[] _received = [];
    private Task<PullResult>? _reading;

    /// <summary>Asks for the weights (not before <paramref name="minVersion"/>) and reads them into <paramref name="weights"/>.</summary>
    public async Task<PullResult> PullAsync(int worker, long minVersion, float[] weights, CancellationToken cancel) =>
        await (await BeginPullAsync(worker, minVersion, weights, cancel).ConfigureAwait(false)).ConfigureAwait(false);

    /// <summary>
    /// Asks for the weights (not before <paramref name="minVersion"/>) and returns the reading of
    /// them into <paramref name="weights"/>, which goes on while the caller computes and pushes: in
    /// sync mode the server sends each chunk of the next version as soon as it is final.
    /// </summary>
    public async Task<Task<PullResult>> BeginPullAsync(int worker, long minVersion, float[] weights, CancellationToken cancel)
    {
        await WriteAsync(new ExchangeRequest { Pull = new PullRequest { WorkerId = worker, MinVersion = minVersion } }, cancel).ConfigureAwait(false);
        if (_received.Length < ParameterClient.ChunkFlags(weights).Length)
        {
            _received = ParameterClient.ChunkFlags(weights);
        }
        _reading = ParameterClient.ReadWeightsAsync(call.ResponseStream, weights, _received, cancel);
        return _reading;
    }

    /// <summary>
    /// Writes one request. When the server has already ended the stream (it refused a push), the
    /// write fails with a bare cancellation; the server's own status is read and thrown instead.
    /// </summary>
    private async Task WriteAsync(ExchangeRequest request, CancellationToken cancel)
    {
        try
        {
            await call.RequestStream.WriteAsync(request, cancel).ConfigureAwait(false);
        }
        catch (RpcException) when (!cancel.IsCancellationRequested)
        {
            if (_reading is { IsCompleted: false })
            {
                // A pull is reading the response: it meets the server's status first.
                await _reading.ConfigureAwait(false);
                throw;
            }
            while (await call.ResponseStream.MoveNext(cancel).ConfigureAwait(false))
            {
                call.ResponseStream.Current.Dispose();
            }
            throw;
        }
    }

    /// <summary>Sends one gradient as chunks.</summary>
    public async Task PushAsync(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, int chunkFloats, float loss, int samples, CancellationToken cancel)
    {
        foreach (var chunk in ParameterClient.Chunks(worker, step, baseVersion, gradientBytes, chunkFloats, loss, samples))
        {
            await WriteAsync(new ExchangeRequest { Chunk = chunk }, cancel).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Sends chunk <paramref name="index"/> of a descending push (the first one sent carries the
    /// loss and the sample count). The caller sends count-1 down to 0, each once it is final.
    /// </summary>
    public Task PushChunkAsync(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, int chunkFloats, int index, bool first, float loss, int samples, CancellationToken cancel) =>
        WriteAsync(new ExchangeRequest { Chunk = ParameterClient.Chunk(worker, step, baseVersion, gradientBytes, chunkFloats, index, first, loss, samples, descending: true) }, cancel);

    /// <summary>Ends the stream.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
            while (await call.ResponseStream.MoveNext(CancellationToken.None).ConfigureAwait(false))
            {
                call.ResponseStream.Current.Dispose();
            }
        }
        catch (RpcException)
        {
            // The server may have ended the run and the stream already.
        }
        call.Dispose();
    }
}

/// <summary>Accumulates a worker's time split.</summary>
public sealed class TimeSplitClock
{
    private readonly TimeSplit _split = new();

    /// <summary>Adds one step's parts.</summary>
    public void Add(double computeMs, double pushMs, double pullMs, double waitMs, int samples)
    {
        lock (_split)
        {
            _split.ComputeMs += computeMs;
            _split.PushMs += pushMs;
            _split.PullMs += pullMs;
            _split.WaitMs += waitMs;
            _split.Steps++;
            _split.Samples += samples;
        }
    }

    /// <summary>Adds a pull that belongs to no step (the first one).</summary>
    public void AddPull(double pullMs, double waitMs)
    {
        lock (_split)
        {
            _split.PullMs += Math.Max(0, pullMs - waitMs);
            _split.WaitMs += Math.Min(pullMs, waitMs);
        }
    }

    /// <summary>A copy of the totals.</summary>
    public TimeSplit Snapshot()
    {
        lock (_split)
        {
            return _split.Clone();
        }
    }

    /// <summary>Milliseconds since <paramref name="start"/> (a Stopwatch timestamp).</summary>
    public static double Since(long start) => Stopwatch.GetElapsedTime(start).TotalMilliseconds;
}
