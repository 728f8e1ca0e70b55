using Cluster.Wire;
using Grpc.Core;

namespace Cluster.Worker;

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

    /// <summary>The worker's time split so far, sent with each push (on the chunk that carries the loss) for the server's per-epoch split; none when null.</summary>
    public Func<TimeSplit>? TimeSoFar { get; set; }

    /// <summary>Sends one gradient as chunks, in ascending order, and waits until they are all handed to the transport.</summary>
    public async Task PushAsync(int worker, long step, long baseVersion, ReadOnlyMemory<byte> gradientBytes, float loss, int samples, CancellationToken cancel)
    {
        var time = TimeSoFar?.Invoke();
        for (int i = 0; i < chunks.Count; i++)
        {
            var chunk = ParameterClient.Chunk(worker, step, baseVersion, gradientBytes, chunks, i, i == 0 || _lanes.Count > 1, loss, samples, descending: false, time);
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
        var request = new ExchangeRequest { Chunk = ParameterClient.Chunk(worker, step, baseVersion, gradientBytes, chunks, index, first || _lanes.Count > 1, loss, samples, descending: true, first || _lanes.Count > 1 ? TimeSoFar?.Invoke() : null) };
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
