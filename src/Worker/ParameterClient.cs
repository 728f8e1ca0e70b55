using System.Diagnostics;
using System.Net.Http;
using Cluster.Wire;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
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
/// pooled buffers and copied into the weights. Its connections gather the HTTP/2 client's small
/// socket writes into large sends during bulk transfers (<see cref="CoalescingSocketStream"/>).
/// </summary>
public sealed class ParameterClient : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly CallInvoker _invoker;
    private readonly string _address;
    private readonly int _maxMessageBytes;
    private readonly string? _token;
    private readonly bool _gatherWrites;
    private readonly List<(GrpcChannel Channel, CallInvoker Invoker)> _laneConnections = [];

    /// <summary>
    /// Connects (lazily) to <paramref name="address"/> with HTTP/2 windows sized for whole-model
    /// transfers; every call carries <paramref name="token"/> when given (<see cref="ClusterToken"/>).
    /// </summary>
    public ParameterClient(string address, int maxMessageBytes = 8 * 1024 * 1024, string? token = null)
        : this(address, maxMessageBytes, token, gatherWrites: true)
    {
    }

    /// <summary>As the public constructor; <paramref name="gatherWrites"/> false leaves the HTTP/2 client its own socket (<see cref="CoalescingSocketStream"/>), for the benchmarks.</summary>
    internal ParameterClient(string address, int maxMessageBytes, string? token, bool gatherWrites)
    {
        _gatherWrites = gatherWrites;
        _address = address;
        _maxMessageBytes = maxMessageBytes;
        _token = token;
        (_channel, _invoker) = Connect();
        Client = new Wire.ParameterServer.ParameterServerClient(_invoker);
    }

    /// <summary>A channel of its own (so its own HTTP/2 connection) to the server, and an invoker whose calls carry the token.</summary>
    private (GrpcChannel Channel, CallInvoker Invoker) Connect()
    {
        var handler = new SocketsHttpHandler
        {
            InitialHttp2StreamWindowSize = 16 * 1024 * 1024,
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            ConnectTimeout = TimeSpan.FromSeconds(5),
        };
        if (_gatherWrites)
        {
            handler.ConnectCallback = (context, cancel) => CoalescingSocketStream.ConnectAsync(context.DnsEndPoint, cancel);
        }
        var channel = GrpcChannel.ForAddress(_address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = _maxMessageBytes,
            MaxSendMessageSize = _maxMessageBytes,
        });
        string? token = _token;
        var invoker = token is null
            ? channel.CreateCallInvoker()
            : channel.Intercept(metadata =>
            {
                metadata.Add(ClusterToken.HeaderName, token);
                return metadata;
            });
        return (channel, invoker);
    }

    /// <summary>How the model <paramref name="join"/> describes is cut into chunks, as the server cuts it.</summary>
    public static ChunkLayout ChunksOf(JoinReply join) =>
        ChunkLayout.ForTensors(new Models.Sequential(Models.ModelSpec.Parse(join.ModelSpec)).NamedParameters, join.ParameterCount, join.ChunkFloats);

    /// <summary>The generated stub, for the small calls.</summary>
    public Wire.ParameterServer.ParameterServerClient Client { get; }

    /// <summary>Pulls the weights, cut as <paramref name="chunks"/>, into <paramref name="weights"/> with one Pull call.</summary>
    public async Task<PullResult> PullAsync(int worker, long minVersion, float[] weights, ChunkLayout chunks, CancellationToken cancel)
    {
        using var call = _invoker.AsyncServerStreamingCall(WireMethods.Worker.Pull, null, new CallOptions(cancellationToken: cancel), new PullRequest { WorkerId = worker, MinVersion = minVersion });
        return await ReadWeightsAsync(call.ResponseStream, weights, chunks, new bool[chunks.Count], null, cancel).ConfigureAwait(false);
    }

    /// <summary>Pushes <paramref name="gradientBytes"/> (a float buffer wrapped by <see cref="FloatBytes.AsBytes"/>) cut as <paramref name="chunks"/> with one Push call.</summary>
    public async Task<PushReply> PushAsync(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, ChunkLayout chunks, float loss, int samples, CancellationToken cancel)
    {
        using var call = Client.Push(cancellationToken: cancel);
        try
        {
            foreach (var chunk in Chunks(worker, step, baseVersion, gradientBytes, chunks, loss, samples))
            {
                await call.RequestStream.WriteAsync(chunk, cancel).ConfigureAwait(false);
            }
            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        }
        catch (RpcException) when (!cancel.IsCancellationRequested)
        {
            // The server ended the call while chunks were still being written: its reply says why.
        }
        return await call.ResponseAsync.ConfigureAwait(false);
    }

    /// <summary>
    /// Opens the worker's long-lived exchange stream (pulls and pushes without a call each), for
    /// weights cut as <paramref name="chunks"/>, and <paramref name="pushLanes"/> − 1 more exchange
    /// streams, each on a connection of its own, that pushes are spread over.
    /// </summary>
    public ExchangeSession OpenExchange(ChunkLayout chunks, CancellationToken cancel, int pushLanes = 1)
    {
        var options = new CallOptions(cancellationToken: cancel);
        var lanes = new List<AsyncDuplexStreamingCall<ExchangeRequest, ReceivedWeightChunk>> { _invoker.AsyncDuplexStreamingCall(WireMethods.Worker.Exchange, null, options) };
        lock (_laneConnections)
        {
            while (_laneConnections.Count < pushLanes - 1)
            {
                _laneConnections.Add(Connect());
            }
            for (int i = 1; i < pushLanes; i++)
            {
                lanes.Add(_laneConnections[i - 1].Invoker.AsyncDuplexStreamingCall(WireMethods.Worker.Exchange, null, options));
            }
        }
        return new ExchangeSession(lanes, chunks);
    }

    /// <summary>
    /// Reads one pull's chunks (each once, in any order: a version still being built arrives in the
    /// order its chunks became final) into <paramref name="weights"/>, cut as <paramref name="chunks"/>.
    /// <paramref name="received"/> (a flag per chunk) says which have arrived, and
    /// <paramref name="arrived"/>, when given, is signalled after each.
    /// </summary>
    internal static async Task<PullResult> ReadWeightsAsync(IAsyncStreamReader<ReceivedWeightChunk> reader, float[] weights, ChunkLayout chunks, bool[] received, SemaphoreSlim? arrived, CancellationToken cancel)
    {
        int got = 0, count = chunks.Count;
        long version = -1;
        bool finished = false;
        double waited = 0;
        // Set for this method's own flow only: the chunk parser, run inside MoveNext, writes straight into the weights.
        WeightSink.Current = new WeightSink(weights, chunks, received);
        while (got < count && await reader.MoveNext(cancel).ConfigureAwait(false))
        {
            using var chunk = reader.Current;
            if (chunk.Count != count || chunk.Index < 0 || chunk.Index >= count || Volatile.Read(ref received[chunk.Index])
                || (!chunk.InSink && chunk.Data.Length != chunks[chunk.Index].Length * sizeof(float)))
            {
                throw new InvalidDataException($"pull: chunk {chunk.Index} of {chunk.Count} ({chunk.Data.Length} bytes) does not fit a model of {weights.Length} floats in {count} chunks, or came twice");
            }
            var (offset, length) = chunks[chunk.Index];
            if (!chunk.InSink)
            {
                FloatBytes.CopyTo(chunk.Data, weights.AsSpan(offset, length));
            }
            Volatile.Write(ref received[chunk.Index], true);
            arrived?.Release();
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

    /// <summary>The chunks of one push, in ascending order; the gradient's bytes are sliced, not copied.</summary>
    internal static IEnumerable<GradientChunk> Chunks(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, ChunkLayout chunks, float loss, int samples)
    {
        for (int i = 0; i < chunks.Count; i++)
        {
            yield return Chunk(worker, step, baseVersion, gradientBytes, chunks, i, first: i == 0, loss, samples, descending: false);
        }
    }

    /// <summary>Chunk <paramref name="index"/> of a push; the first one sent carries the loss, the sample count and the order.</summary>
    internal static GradientChunk Chunk(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, ChunkLayout chunks, int index, bool first, float loss, int samples, bool descending)
    {
        var (offset, length) = chunks[index];
        return new GradientChunk
        {
            WorkerId = worker,
            Step = step,
            BaseVersion = baseVersion,
            Index = index,
            Count = chunks.Count,
            Data = UnsafeByteOperations.UnsafeWrap(gradientBytes.Slice(offset * sizeof(float), length * sizeof(float))),
            Loss = first ? loss : 0,
            Samples = first ? samples : 0,
            Descending = descending,
        };
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _channel.Dispose();
        foreach (var (channel, _) in _laneConnections)
        {
            channel.Dispose();
        }
    }
}

/// <summary>
/// A worker's long-lived exchange stream: pulls and pushes travel on one HTTP/2 stream for the
/// whole run, so a step costs no call setup, headers or trailers. With push lanes, pushes are
/// spread over more such streams, each on its own connection: the k-th chunk sent goes on lane
/// k mod lanes, one write in flight per lane, because one HTTP/2 stream of .NET's client hands
/// its data to the connection's writer 16 KiB frame by frame, one frame at a time.
/// </summary>
public sealed class ExchangeSession : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<ExchangeRequest, ReceivedWeightChunk> call;
    private readonly IReadOnlyList<AsyncDuplexStreamingCall<ExchangeRequest, ReceivedWeightChunk>> _lanes;
    private readonly ChunkLayout chunks;
    private readonly Task[] _inFlight;
    private Task<PullResult>? _reading;

    /// <summary>A session on <paramref name="lanes"/> (the first carries the pulls too), for weights cut as <paramref name="layout"/>.</summary>
    public ExchangeSession(IReadOnlyList<AsyncDuplexStreamingCall<ExchangeRequest, ReceivedWeightChunk>> lanes, ChunkLayout layout)
    {
        call = lanes[0];
        _lanes = lanes;
        chunks = layout;
        _inFlight = [.. lanes.Select(_ => Task.CompletedTask)];
    }

    /// <summary>How weights and gradients are cut into chunks.</summary>
    public ChunkLayout Chunks => chunks;

    /// <summary>Streams a push is spread over.</summary>
    public int PushLanes => _lanes.Count;

    /// <summary>Asks for the weights (not before <paramref name="minVersion"/>) and reads them into <paramref name="weights"/>.</summary>
    public async Task<PullResult> PullAsync(int worker, long minVersion, float[] weights, CancellationToken cancel) =>
        await (await BeginPullAsync(worker, minVersion, weights, cancel).ConfigureAwait(false)).Reading.ConfigureAwait(false);

    /// <summary>
    /// Asks for the weights (not before <paramref name="minVersion"/>) and returns them arriving
    /// into <paramref name="weights"/> while the caller goes on: in sync mode the server sends each
    /// chunk of the next version as soon as it is final, and forward waits only for the chunks of
    /// the layer it is about to run.
    /// </summary>
    public async Task<IncomingWeights> BeginPullAsync(int worker, long minVersion, float[] weights, CancellationToken cancel)
    {
        await WriteAsync(new ExchangeRequest { Pull = new PullRequest { WorkerId = worker, MinVersion = minVersion } }, cancel).ConfigureAwait(false);
        var incoming = new IncomingWeights(chunks);
        _reading = incoming.Start(ParameterClient.ReadWeightsAsync(call.ResponseStream, weights, chunks, incoming.Received, incoming.Arrived, cancel));
        return incoming;
    }

    /// <summary>
    /// Writes one request on the first stream. When the server has already ended the stream (it
    /// refused a push), the write fails with a bare cancellation, or, when the HTTP/2 stream was
    /// closed under the write, with the HTTP client's own exception; the server's own status is
    /// read and thrown instead.
    /// </summary>
    private async Task WriteAsync(ExchangeRequest request, CancellationToken cancel)
    {
        try
        {
            await call.RequestStream.WriteAsync(request, cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (EndedUnderTheWrite(e) && !cancel.IsCancellationRequested)
        {
            if (_reading is { IsCompleted: false })
            {
                // A pull is reading the response: it meets the server's status first.
                await _reading.ConfigureAwait(false);
                throw;
            }
            await DrainAsync(call, cancel).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Writes one gradient chunk on push lane <paramref name="lane"/> (not the first); a refusal is reported with the server's status.</summary>
    private async Task WriteOnLaneAsync(int lane, ExchangeRequest request, CancellationToken cancel)
    {
        try
        {
            await _lanes[lane].RequestStream.WriteAsync(request, cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (EndedUnderTheWrite(e) && !cancel.IsCancellationRequested)
        {
            await DrainAsync(_lanes[lane], cancel).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>How a write fails when the server ended the call first: gRPC's cancellation, or the HTTP/2 stream closed under it.</summary>
    private static bool EndedUnderTheWrite(Exception e) => e is RpcException or HttpRequestException or IOException;

    /// <summary>Reads a stream's response to its end, so that the server's status, if it ended the call, is thrown.</summary>
    private static async Task DrainAsync(AsyncDuplexStreamingCall<ExchangeRequest, ReceivedWeightChunk> lane, CancellationToken cancel)
    {
        while (await lane.ResponseStream.MoveNext(cancel).ConfigureAwait(false))
        {
            lane.ResponseStream.Current.Dispose();
        }
    }

    /// <summary>Sends one gradient as chunks, in ascending order, and waits until they are all handed to the transport.</summary>
    public async Task PushAsync(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, float loss, int samples, CancellationToken cancel)
    {
        for (int i = 0; i < chunks.Count; i++)
        {
            var chunk = ParameterClient.Chunk(worker, step, baseVersion, gradientBytes, chunks, i, i == 0 || _lanes.Count > 1, loss, samples, descending: false);
            await SendOnLaneAsync(new ExchangeRequest { Chunk = chunk }, position: i, cancel).ConfigureAwait(false);
        }
        await PushSentAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Sends chunk <paramref name="index"/> of a descending push (the first one sent carries the
    /// loss and the sample count; with lanes every chunk does, since the lanes race). The caller
    /// sends count-1 down to 0, each once it is final, then waits for <see cref="PushSentAsync"/>
    /// before it changes the gradient again. With lanes this returns once the chunk's lane is free,
    /// so the lanes send in parallel.
    /// </summary>
    public async Task PushChunkAsync(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, int index, bool first, float loss, int samples, CancellationToken cancel)
    {
        var request = new ExchangeRequest { Chunk = ParameterClient.Chunk(worker, step, baseVersion, gradientBytes, chunks, index, first || _lanes.Count > 1, loss, samples, descending: true) };
        await SendOnLaneAsync(request, position: chunks.Count - 1 - index, cancel).ConfigureAwait(false);
    }

    /// <summary>Sends the <paramref name="position"/>-th chunk of a push on its lane, once that lane's previous write is done.</summary>
    private async Task SendOnLaneAsync(ExchangeRequest request, int position, CancellationToken cancel)
    {
        int lane = position % _lanes.Count;
        await _inFlight[lane].ConfigureAwait(false);
        _inFlight[lane] = lane == 0 ? WriteAsync(request, cancel) : WriteOnLaneAsync(lane, request, cancel);
        if (_lanes.Count == 1)
        {
            await _inFlight[0].ConfigureAwait(false);
        }
    }

    /// <summary>Completes when every chunk given to <see cref="PushChunkAsync"/> has been handed to the transport (the gradient may then change).</summary>
    public Task PushSentAsync() => Task.WhenAll(_inFlight);

    /// <summary>Ends the streams; a pull still waiting is dropped (the server ends it), and nothing waits more than 5 s.</summary>
    public async ValueTask DisposeAsync()
    {
        using var bounded = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        for (int lane = 0; lane < _lanes.Count; lane++)
        {
            try
            {
                await _inFlight[lane].WaitAsync(bounded.Token).ConfigureAwait(false);
                await _lanes[lane].RequestStream.CompleteAsync().ConfigureAwait(false);
                if (lane == 0 && _reading is { IsCompleted: false })
                {
                    await _reading.WaitAsync(bounded.Token).ConfigureAwait(false);
                }
                else
                {
                    await DrainAsync(_lanes[lane], bounded.Token).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException or InvalidDataException or IOException or HttpRequestException or TimeoutException)
            {
                // The server may have ended the run and the stream already.
            }
            _lanes[lane].Dispose();
        }
    }
}

/// <summary>
/// Weights of one pull, arriving chunk by chunk in the background: <see cref="WaitFor"/> blocks
/// the compute thread only until the chunks it is about to use are in.
/// </summary>
public sealed class IncomingWeights
{
    private readonly ChunkLayout _chunks;
    private Task<PullResult> _reading = Task.FromResult(new PullResult(-1, false, 0));

    internal IncomingWeights(ChunkLayout chunks)
    {
        _chunks = chunks;
        Received = new bool[chunks.Count];
    }

    /// <summary>The reading of the whole pull; its result once every chunk is in.</summary>
    public Task<PullResult> Reading => _reading;

    internal bool[] Received { get; }

    internal SemaphoreSlim Arrived { get; } = new(0);

    internal Task<PullResult> Start(Task<PullResult> reading)
    {
        _reading = reading;
        // A failed pull wakes the waiter too, which then throws its error.
        _ = reading.ContinueWith(_ => Arrived.Release(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return reading;
    }

    /// <summary>
    /// Blocks until every chunk holding floats [<paramref name="offset"/>, offset + length) has
    /// arrived; returns how long it waited, in ms. Throws what the pull failed with.
    /// </summary>
    public double WaitFor(int offset, int length)
    {
        long start = Stopwatch.GetTimestamp();
        int first = _chunks.IndexOf(offset), last = _chunks.IndexOf(offset + Math.Max(1, length) - 1);
        while (!AllArrived(first, last))
        {
            if (_reading.IsCompleted)
            {
                // Throws the pull's error. The last chunk may have arrived, and the pull ended,
                // since the check above: a pull that ended without error has every chunk.
                _reading.GetAwaiter().GetResult();
                if (!AllArrived(first, last))
                {
                    throw new InvalidDataException($"pull ended without chunks {first} to {last}");
                }
                break;
            }
            Arrived.Wait();
        }
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    private bool AllArrived(int first, int last)
    {
        for (int i = first; i <= last; i++)
        {
            if (!Volatile.Read(ref Received[i]))
            {
                return false;
            }
        }
        return true;
    }
}

/// <summary>
/// Accumulates a worker's time split, over the whole run and from a step on (<see cref="MarkSteadyStart"/>):
/// throughput benchmarks time the second half of a run, after every process's warm-up.
/// </summary>
public sealed class TimeSplitClock
{
    private readonly TimeSplit _split = new();
    private TimeSplit? _atSteadyStart;

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

    /// <summary>The steady part starts now: <see cref="SteadySnapshot"/> counts from here (the first call only).</summary>
    public void MarkSteadyStart()
    {
        lock (_split)
        {
            _atSteadyStart ??= _split.Clone();
        }
    }

    /// <summary>The totals since <see cref="MarkSteadyStart"/>; empty before it.</summary>
    public TimeSplit SteadySnapshot()
    {
        lock (_split)
        {
            if (_atSteadyStart is not { } start)
            {
                return new TimeSplit();
            }
            return new TimeSplit
            {
                ComputeMs = _split.ComputeMs - start.ComputeMs,
                PushMs = _split.PushMs - start.PushMs,
                PullMs = _split.PullMs - start.PullMs,
                WaitMs = _split.WaitMs - start.WaitMs,
                Steps = _split.Steps - start.Steps,
                Samples = _split.Samples - start.Samples,
            };
        }
    }

    /// <summary>Milliseconds since <paramref name="start"/> (a Stopwatch timestamp).</summary>
    public static double Since(long start) => Stopwatch.GetElapsedTime(start).TotalMilliseconds;
}
