using System.Buffers;
using Cluster.ParameterServer.Rules;
using Cluster.Wire;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Cluster.ParameterServer;

/// <summary>
/// The gRPC face of the parameter server (the service of protos/cluster.proto, bound by
/// <see cref="ParameterServerMethods"/>). It validates every request before it touches state: an
/// unknown worker, a chunk out of order or of the wrong length, NaN or Inf in a gradient, a version
/// from the future are each refused with a precise status, logged and counted, and since the rule
/// only ever sees complete, valid gradients the weights are never touched by a bad push.
/// </summary>
public sealed class ParameterServerService(TrainingCoordinator run, ILogger<ParameterServerService> logger)
{
    private TrainingCoordinator Coordinator => run;

    private int ChunkFloats => run.Options.ChunkFloats;

    private int ChunkCount => run.Store.ChunkCount;

    /// <summary>A worker joins: its rank, its shard, the model and the settings.</summary>
    public Task<JoinReply> Join(JoinRequest request, ServerCallContext context)
    {
        if (run.Rule.Finished)
        {
            throw Refuse(StatusCode.FailedPrecondition, "the run is over: start a new server to train again");
        }
        var record = run.Membership.Join(request.WorkerName, run.Recorder.NowMs)
            ?? throw Refuse(StatusCode.ResourceExhausted, $"the cluster is full: all {run.Membership.Expected} workers have joined and none has left");
        if (record.Replaces is int departed)
        {
            // NOTE: counted by the rule from the next step not yet begun; its first pull waits for it.
            run.Rule.WorkerJoined(record.Id);
            logger.LogInformation("worker {Id} joined: {Name}, in the place of worker {Departed}, which left: shard {Shard}, from the next step", record.Id, record.Name, departed, record.Shard);
        }
        else
        {
            logger.LogInformation("worker {Id} joined: {Name} ({Count}/{Expected})", record.Id, record.Name, record.Id + 1, run.Membership.Expected);
        }
        var t = run.Options.Training;
        return Task.FromResult(new JoinReply
        {
            WorkerId = record.Id,
            WorkerCount = run.Membership.Expected,
            Replacement = record.Replaces is not null,
            ShardIndex = record.Shard,
            ShardCount = run.Membership.Expected,
            ModelSpec = run.Spec.ToText(),
            ParameterCount = run.Store.Size,
            ChunkFloats = ChunkFloats,
            Settings = new TrainingSettings
            {
                Mode = run.Rule.Name,
                Batch = t.Batch,
                Epochs = t.Epochs,
                Seed = t.Seed,
                Data = t.Data ?? "",
                TotalSamples = run.TotalSamples,
                Compute = run.Options.Compute,
                EmulatedComputeMs = run.Options.EmulatedComputeMs,
                EmulatedChunkReadyMs = { run.Options.EmulatedChunkReadyMs },
                EmulatedChunkNeededMs = { run.Options.EmulatedChunkNeededMs },
                EmulatedForwardMs = run.Options.EmulatedForwardMs,
                Threads = run.Options.WorkerThreads,
                Augment = t.Augment ?? "",
                PushLanes = run.EffectivePushLanes,
                StartEpoch = run.StartEpoch,
                ValidationFraction = t.EffectiveValidationFraction ?? 0,
            },
        });
    }

    /// <summary>Streams the current weights as chunks, once the consistency rule allows.</summary>
    public Task Pull(PullRequest request, IServerStreamWriter<WeightChunk> responseStream, ServerCallContext context) =>
        ServePullAsync(request, responseStream, context.CancellationToken);

    /// <summary>Receives one gradient as chunks, validated one by one, and hands it to the rule.</summary>
    public async Task<PushReply> Push(IAsyncStreamReader<ReceivedGradientChunk> requestStream, ServerCallContext context)
    {
        var push = new PushAssembly(this, lanes: 1);
        GradientSink.Current = push.OnlyLane;
        try
        {
            while (await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
            {
                using var chunk = requestStream.Current;
                push.Accept(chunk);
            }
            return push.Submit();
        }
        finally
        {
            push.Abandon();
        }
    }

    /// <summary>
    /// A worker's long-lived stream: gradients as chunks, and pull requests answered with weight
    /// chunks. A pull is answered while the stream goes on reading, so a worker in sync mode asks
    /// for the next version before it pushes and receives each chunk of it as soon as it is final.
    /// Pulls are answered one after the other, in the order they were asked.
    /// </summary>
    public async Task Exchange(IAsyncStreamReader<ReceivedExchangeRequest> requestStream, IServerStreamWriter<WeightChunk> responseStream, ServerCallContext context)
    {
        var lane = new PushLane();
        // The chunk parser, running inside this stream's reads, hands the lane each chunk it is waiting for.
        GradientSink.Current = lane;
        // The push the last chunk was given to: if the stream fails, it is refused on every lane.
        PushAssembly? feeding = null;
        Task pulling = Task.CompletedTask;
        // A failed pull (a version from the future) ends the call even while it waits for a request.
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        try
        {
            while (await requestStream.MoveNext(failed.Token).ConfigureAwait(false))
            {
                var request = requestStream.Current;
                using var chunk = request.Chunk;
                switch (request)
                {
                    case { Pull: { } pull }:
                        pulling = ServePullAfterAsync(pulling, pull, responseStream, failed);
                        break;
                    case { Chunk: { } received }:
                        var push = feeding = lane.InPush ? lane.Push! : PendingPush(received);
                        if (push.Accept(received, lane))
                        {
                            push.Submit();
                        }
                        break;
                    default:
                        throw Reject(StatusCode.InvalidArgument, "exchange request holds neither a pull nor a gradient chunk");
                }
            }
            if (lane.InPush)
            {
                throw Reject(StatusCode.InvalidArgument, "exchange ended in the middle of a push");
            }
            if (!pulling.IsCompleted)
            {
                // A worker that ends its stream is done: a pull still waiting for a version is dropped.
                await failed.CancelAsync().ConfigureAwait(false);
            }
            try
            {
                await pulling.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!context.CancellationToken.IsCancellationRequested)
            {
            }
        }
        catch (OperationCanceledException) when (pulling.IsFaulted && !context.CancellationToken.IsCancellationRequested)
        {
            await pulling.ConfigureAwait(false);
        }
        finally
        {
            if (feeding is { IsDone: false })
            {
                feeding.Abandon();
            }
            if (!pulling.IsCompleted)
            {
                // Nothing may write to the response once the call has ended.
                await failed.CancelAsync().ConfigureAwait(false);
                try
                {
                    await pulling.ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or RpcException)
                {
                    // The call is ending for another reason, which is the one reported.
                }
            }
        }
    }

    private async Task ServePullAfterAsync(Task previous, PullRequest pull, IAsyncStreamWriter<WeightChunk> writer, CancellationTokenSource failed)
    {
        try
        {
            await previous.ConfigureAwait(false);
            await ServePullAsync(pull, writer, failed.Token).ConfigureAwait(false);
        }
        catch
        {
            await failed.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task ServePullAsync(PullRequest request, IAsyncStreamWriter<WeightChunk> writer, CancellationToken cancel)
    {
        var worker = Known(request.WorkerId);
        if (request.MinVersion > run.Store.Version + 1)
        {
            throw Reject(StatusCode.FailedPrecondition, $"pull from worker {worker.Id} asks for version {request.MinVersion} but the server is at {run.Store.Version}: a version from the future");
        }
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        await run.Membership.AllJoined.WaitAsync(cancel).ConfigureAwait(false);
        var snapshot = await run.Rule.AcquireForPullAsync(worker.Id, request.MinVersion, cancel).ConfigureAwait(false);
        double held = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        // A worker in sync mode asks for the next version before it computes: the time its pull is
        // held is mostly its own compute; what it waited for is the others of the step.
        bool streamed = run.Rule.TakesChunks && request.MinVersion > 0;
        try
        {
            int count = snapshot.ChunkCount;
            var sent = new bool[count];
            var queue = new WeightSnapshot.ChunkQueue();
            for (int n = 0; n < count; n++)
            {
                // A version still being built is sent as its chunks become final, the ready ones lowest index first.
                int index = await snapshot.NextChunkAsync(queue, cancel).ConfigureAwait(false);
                if (index < 0)
                {
                    await SendRestAsync(writer, sent, cancel).ConfigureAwait(false);
                    break;
                }
                sent[index] = true;
                // NOTE: the wait for the rule: how long the pull was held back (first chunk), or how
                // long this worker's gradient waited for the others of the step (last chunk).
                double waited = !streamed ? (n == 0 ? held : 0) : n == count - 1 ? run.Rule.StepWaitMs(worker.Id) : 0;
                await writer.WriteAsync(ChunkOf(snapshot, index, waited), cancel).ConfigureAwait(false);
            }
        }
        finally
        {
            snapshot.Release();
        }
        worker.LastSeenMs = run.Recorder.NowMs;
    }

    /// <summary>The run ended while a version was being built: the chunks not yet sent come from the last published one.</summary>
    private async Task SendRestAsync(IAsyncStreamWriter<WeightChunk> writer, bool[] sent, CancellationToken cancel)
    {
        var current = run.Store.Acquire();
        try
        {
            for (int i = 0; i < sent.Length; i++)
            {
                if (!sent[i])
                {
                    await writer.WriteAsync(ChunkOf(current, i, 0), cancel).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            current.Release();
        }
    }

    private WeightChunk ChunkOf(WeightSnapshot snapshot, int index, double waitedMs)
    {
        var (offset, length) = run.Store.Chunk(index);
        return new WeightChunk
        {
            Version = snapshot.Version,
            Index = index,
            Count = snapshot.ChunkCount,
            Data = UnsafeByteOperations.UnsafeWrap(snapshot.Bytes.AsMemory(offset * sizeof(float), length * sizeof(float))),
            Finished = run.Rule.Finished,
            WaitedMs = waitedMs,
        };
    }

    /// <summary>
    /// Where one exchange stream stands in its worker's current push: the push it feeds and the
    /// send position (the k-th chunk sent) it must carry next.
    /// </summary>
    private sealed class PushLane : GradientSink
    {
        public PushAssembly? Push;
        public int NextPosition = -1;

        /// <summary>True when the stream is in the middle of a push that has not completed (it may have been refused on another lane: its next chunk then is too).</summary>
        public bool InPush => Push is { IsComplete: false };

        /// <summary>Takes the chunk this stream must carry next in the push it is in the middle of; the first chunk of a push takes the ordinary path.</summary>
        public override bool TryWrite(ReceivedGradientChunk header, ReadOnlySequence<byte> payload, out bool finite)
        {
            finite = false;
            return Push is { } push && push.TryWriteInPlace(header, payload, this, out finite);
        }
    }

    /// <summary>
    /// The push a worker's exchange streams (its push lanes) are delivering now: one assembly for
    /// all of them, whichever stream a chunk comes on. Only one push per worker is ever in flight:
    /// lanes are used only in sync mode, where a worker's next push needs weights that need every
    /// chunk of this one.
    /// </summary>
    private PushAssembly PendingPush(ReceivedGradientChunk chunk)
    {
        var worker = Known(chunk.WorkerId);
        lock (worker)
        {
            if (worker.PendingPush is PushAssembly refused && refused.WasRefusedAt(chunk.Step))
            {
                // A lane whose first chunk comes after the push was refused on another lane.
                throw Reject(StatusCode.Aborted, $"push of step {chunk.Step} from worker {chunk.WorkerId} was refused on another of its streams: chunk {chunk.Index} is dropped");
            }
            if (worker.PendingPush is not PushAssembly { IsDone: false } pending)
            {
                pending = new PushAssembly(this, run.EffectivePushLanes);
                worker.PendingPush = pending;
            }
            return pending;
        }
    }

    /// <summary>
    /// One gradient arriving chunk by chunk, on one stream or spread over a worker's push lanes
    /// (the k-th chunk sent on lane k mod lanes): each chunk is checked (worker, order within its
    /// stream, length, finite values) and copied into a pooled buffer as it comes; only a complete
    /// gradient reaches the rule. Thread-safe: the lanes' handlers call it concurrently.
    /// </summary>
    private sealed class PushAssembly(ParameterServerService service, int lanes)
    {
        private readonly Lock _gate = new();
        private readonly bool[] _laneStarted = new bool[lanes];
        private readonly PushLane _onlyLane = new();
        private float[]? _buffer;
        private ReceivedGradientChunk? _first;
        private int _received;
        private bool _abandoned;
        private Contribution? _contribution;
        private PushOutcome? _refused;

        private TrainingCoordinator Run => service.Coordinator;

        /// <summary>Every chunk is in. (The gate is re-entrant: Accept reads it under the lock too.)</summary>
        public bool IsComplete
        {
            get
            {
                lock (_gate)
                {
                    return _first is not null && _received == service.ChunkCount;
                }
            }
        }

        /// <summary>Whether this push, for the worker's step <paramref name="step"/>, was refused on one of its streams before it was complete.</summary>
        public bool WasRefusedAt(long step)
        {
            lock (_gate)
            {
                return _abandoned && _first?.Step == step;
            }
        }

        /// <summary>Complete, or refused on one of its streams: no chunk may join it any more.</summary>
        public bool IsDone
        {
            get
            {
                lock (_gate)
                {
                    return IsComplete || _abandoned;
                }
            }
        }

        /// <summary>Checks and copies one chunk (a standalone Push call: its only stream); true when it completed the push.</summary>
        public bool Accept(ReceivedGradientChunk chunk) => Accept(chunk, _onlyLane);

        /// <summary>The sink of a standalone Push call's only stream.</summary>
        public GradientSink OnlyLane => _onlyLane;

        /// <summary>
        /// The <see cref="GradientSink"/> half of <see cref="Accept(ReceivedGradientChunk, PushLane)"/>:
        /// copies and checks the payload into the gradient when the chunk is the one
        /// <paramref name="lane"/> must carry next in this push, as Accept will then find it. Under
        /// the same lock as Accept and Abandon, so the buffer cannot go back to the pool meanwhile.
        /// </summary>
        public bool TryWriteInPlace(ReceivedGradientChunk header, ReadOnlySequence<byte> payload, PushLane lane, out bool finite)
        {
            finite = false;
            lock (_gate)
            {
                if (_abandoned || _first is null || _buffer is null || _received == service.ChunkCount || !SamePush(header))
                {
                    return false;
                }
                int position = SendPosition(header.Index);
                if (position != lane.NextPosition || position < 0 || position >= service.ChunkCount)
                {
                    return false;
                }
                var (offset, floats) = Run.Store.Chunk(header.Index);
                if (payload.Length != (long)floats * sizeof(float))
                {
                    return false;
                }
                finite = FloatBytes.CopyFinite(payload, _buffer.AsSpan(offset, floats));
                return true;
            }
        }

        /// <summary>
        /// Checks and copies one chunk that came on the stream <paramref name="lane"/>;
        /// <paramref name="chunk"/> stays the caller's (only its header fields are kept). True when
        /// it completed the push, which the caller then submits.
        /// </summary>
        public bool Accept(ReceivedGradientChunk chunk, PushLane lane)
        {
            lock (_gate)
            {
                int expected = service.ChunkCount;
                if (_abandoned)
                {
                    throw service.Reject(StatusCode.Aborted, $"push of step {chunk.Step} from worker {chunk.WorkerId} was refused on another of its streams: chunk {chunk.Index} is dropped");
                }
                if (_first is null)
                {
                    service.Known(chunk.WorkerId);
                    if (chunk.Count != expected)
                    {
                        throw service.Reject(StatusCode.InvalidArgument, $"push from worker {chunk.WorkerId} announces {chunk.Count} chunks; a gradient of {Run.Store.Size} floats is {expected} chunks of at most {service.ChunkFloats}");
                    }
                    if (chunk.BaseVersion > Run.Store.Version || chunk.BaseVersion < 0)
                    {
                        throw service.Reject(StatusCode.FailedPrecondition, $"push from worker {chunk.WorkerId} is based on version {chunk.BaseVersion} but the server is at {Run.Store.Version}: a version from the future");
                    }
                    _first = chunk;
                    _buffer = Run.Pool.Rent();
                }
                else if (!SamePush(chunk))
                {
                    throw service.Reject(StatusCode.InvalidArgument, $"push from worker {_first.WorkerId} changes its worker, step, base version or chunk count in chunk {chunk.Index}");
                }
                // The k-th chunk sent travels on lane k mod lanes, each lane in sending order.
                int position = SendPosition(chunk.Index);
                // A stream's first chunk opens a lane no other stream has opened (in any order: the lanes race).
                int wanted = lane.Push == this ? lane.NextPosition
                    : position >= 0 && position < lanes && !_laneStarted[position] ? position
                    : FirstFreeLane();
                if (position != wanted || position < 0 || position >= expected)
                {
                    // The mapping between chunk index and send position is its own inverse.
                    int wantedIndex = SendPosition(wanted);
                    throw service.Reject(StatusCode.InvalidArgument, $"push from worker {_first.WorkerId}: chunk {chunk.Index} arrived where chunk {wantedIndex} was expected (out of order)");
                }
                if (_received == 0 && (chunk.Samples < 1 || !float.IsFinite(chunk.Loss)))
                {
                    throw service.Reject(StatusCode.InvalidArgument, $"push from worker {chunk.WorkerId} reports {chunk.Samples} samples and loss {chunk.Loss}: need at least 1 sample and a finite loss");
                }
                var (offset, floats) = Run.Store.Chunk(chunk.Index);
                if (chunk.DataLength != floats * sizeof(float))
                {
                    throw service.Reject(StatusCode.InvalidArgument, $"push from worker {_first.WorkerId}: chunk {chunk.Index} holds {chunk.DataLength} bytes; expected {floats * sizeof(float)} ({floats} floats)");
                }
                // A chunk the stream's sink took while it was parsed is in place already (TryWriteInPlace): the same checks, passed.
                if (!(chunk.WrittenInPlace ? chunk.Finite : FloatBytes.CopyFinite(chunk.Data, _buffer.AsSpan(offset, floats))))
                {
                    throw service.Reject(StatusCode.InvalidArgument, $"push from worker {_first.WorkerId}: chunk {chunk.Index} holds NaN or Inf; the gradient is refused and the weights are untouched by it");
                }
                if (position < lanes)
                {
                    _laneStarted[position] = true;
                }
                lane.Push = this;
                lane.NextPosition = position + lanes;
                _received++;
                if (Run.Rule.TakesChunks)
                {
                    // The rule sums each chunk as soon as every worker's is in: hand it over checked.
                    if (_contribution is null && _refused is null)
                    {
                        _contribution = Run.Rule.Open(_first.WorkerId, _first.Step, _first.BaseVersion, _buffer!, _first.Loss, _first.Samples, out var refused);
                        _refused = _contribution is null ? refused : null;
                    }
                    if (_contribution is not null)
                    {
                        Run.Rule.ChunkArrived(_contribution, chunk.Index);
                    }
                }
                return IsComplete;
            }
        }

        /// <summary>Whether <paramref name="chunk"/> carries the worker, step, base version and chunk count of this push's first chunk.</summary>
        private bool SamePush(ReceivedGradientChunk chunk) =>
            chunk.WorkerId == _first!.WorkerId && chunk.Step == _first.Step && chunk.BaseVersion == _first.BaseVersion && chunk.Count == service.ChunkCount;

        /// <summary>Where chunk <paramref name="index"/> comes in the sending order (the k-th chunk sent): the same, or reversed for a descending push.</summary>
        private int SendPosition(int index) => _first!.Descending ? service.ChunkCount - 1 - index : index;

        /// <summary>The send position a stream's first chunk of this push must have: the first lane no stream has taken yet.</summary>
        private int FirstFreeLane()
        {
            int lane = Array.IndexOf(_laneStarted, false);
            return lane < 0 ? -1 : lane;
        }

        public PushReply Submit()
        {
            if (!IsComplete)
            {
                throw service.Reject(StatusCode.InvalidArgument, $"push from worker {_first?.WorkerId.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"} ended after {_received} of {service.ChunkCount} chunks");
            }
            var worker = service.Known(_first!.WorkerId);
            worker.Pushes++;
            worker.LastSeenMs = Run.Recorder.NowMs;
            if (Run.Rule.TakesChunks)
            {
                var taken = _refused ?? Run.Rule.Close(_contribution!);
                if (_contribution is null)
                {
                    Run.Pool.Return(_buffer!);
                }
                _contribution = null;
                _buffer = null;
                return new PushReply { Version = Run.Store.Version, Outcome = OutcomeName(taken) };
            }
            var gradient = new Gradient(_first.WorkerId, _first.Step, _first.BaseVersion, _buffer!, _first.Loss, _first.Samples);
            _buffer = null;
            var outcome = Run.Rule.Submit(gradient);
            return new PushReply { Version = Run.Store.Version, Outcome = OutcomeName(outcome) };
        }

        /// <summary>
        /// Gives the buffer back if the push did not reach the rule, or takes what the rule already
        /// has of it out; chunks still coming on the worker's other lanes are then refused.
        /// </summary>
        public void Abandon()
        {
            lock (_gate)
            {
                if (IsComplete && _buffer is null)
                {
                    return;
                }
                _abandoned = true;
                if (_contribution is not null)
                {
                    Run.Rule.Abandon(_contribution);
                    _contribution = null;
                    _buffer = null;
                }
                if (_buffer is not null)
                {
                    Run.Pool.Return(_buffer);
                    _buffer = null;
                }
            }
        }
    }

    /// <summary>Records a worker's liveness and time split; tells it whether the run is over.</summary>
    public Task<HeartbeatReply> Heartbeat(HeartbeatRequest request, ServerCallContext context)
    {
        var worker = Known(request.WorkerId);
        worker.Time = request.Time ?? new TimeSplit();
        worker.SteadyTime = request.SteadyTime ?? new TimeSplit();
        worker.LastSeenMs = run.Recorder.NowMs;
        return Task.FromResult(new HeartbeatReply { Finished = run.Rule.Finished });
    }

    /// <summary>A worker leaves for good; the rule stops waiting for it.</summary>
    public Task<LeaveReply> Leave(LeaveRequest request, ServerCallContext context)
    {
        var worker = Known(request.WorkerId);
        if (worker.Active)
        {
            worker.Active = false;
            run.Rule.WorkerLeft(worker.Id);
            logger.LogInformation("worker {Id} left ({Active} active)", worker.Id, run.Membership.ActiveCount);
            if (run.Membership.ActiveCount == 0 && run.Membership.AllJoined.IsCompleted && !run.Rule.Finished)
            {
                logger.LogWarning("every worker has left: ending the run");
                run.Stop();
            }
        }
        return Task.FromResult(new LeaveReply());
    }

    /// <summary>Everything the server records.</summary>
    public Task<StatusReply> Status(StatusRequest request, ServerCallContext context)
    {
        var status = StatusBuilder.Build(run);
        if (status.Finished)
        {
            run.FinalStatusServed = true;
        }
        return Task.FromResult(status);
    }

    private WorkerRecord Known(int id) =>
        run.Membership.Find(id) is { Active: true } worker
            ? worker
            : throw Reject(StatusCode.NotFound, $"worker {id} is unknown or has left: join first");

    private RpcException Reject(StatusCode code, string message)
    {
        run.Recorder.CountRejected();
        return Refuse(code, message);
    }

    private RpcException Refuse(StatusCode code, string message)
    {
        logger.LogWarning("refused: {Message}", message);
        return new RpcException(new Status(code, message));
    }

    private static string OutcomeName(PushOutcome outcome) => outcome switch
    {
        PushOutcome.Applied => "applied",
        PushOutcome.Queued => "queued",
        PushOutcome.DroppedLate => "dropped-late",
        _ => "duplicate",
    };
}
