using System.Security.Cryptography.X509Certificates;
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
    private readonly X509Certificate2? _authority;
    private readonly List<(GrpcChannel Channel, CallInvoker Invoker)> _laneConnections = [];

    /// <summary>
    /// Connects (lazily) to <paramref name="address"/> with HTTP/2 windows sized for whole-model
    /// transfers; every call carries <paramref name="token"/> when given (<see cref="ClusterToken"/>).
    /// An https address is trusted by the machine's authorities, or by <paramref name="authority"/>
    /// alone when given (<see cref="ClusterTls.Trusts"/>).
    /// </summary>
    public ParameterClient(string address, int maxMessageBytes = 8 * 1024 * 1024, string? token = null, X509Certificate2? authority = null)
        : this(address, maxMessageBytes, token, gatherWrites: true, authority)
    {
    }

    /// <summary>As the public constructor; <paramref name="gatherWrites"/> false leaves the HTTP/2 client its own socket (<see cref="CoalescingSocketStream"/>), for the benchmarks.</summary>
    internal ParameterClient(string address, int maxMessageBytes, string? token, bool gatherWrites, X509Certificate2? authority = null)
    {
        _gatherWrites = gatherWrites;
        _authority = authority;
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
        if (_authority is X509Certificate2 authority)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, chain, errors) => ClusterTls.Trusts(authority, presented, chain, errors);
        }
        if (_gatherWrites)
        {
            // NOTE: over https the handler runs TLS on top of this stream: it gathers the encrypted records.
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
            yield return Chunk(worker, step, baseVersion, gradientBytes, chunks, i, first: i == 0, loss, samples, descending: false, time: null);
        }
    }

    /// <summary>Chunk <paramref name="index"/> of a push; the first one sent carries the loss, the sample count, the order and the worker's time split so far.</summary>
    internal static GradientChunk Chunk(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, ChunkLayout chunks, int index, bool first, float loss, int samples, bool descending, TimeSplit? time)
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
            Time = first ? time : null,
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
