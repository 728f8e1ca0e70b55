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
public sealed partial class ParameterServerService(TrainingCoordinator run, ILogger<ParameterServerService> logger)
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
        var admission = run.Membership.Join(request.WorkerName, run.Recorder.NowMs, request.HasRank ? request.Rank : null,
            request.HasPreviousWorkerId ? request.PreviousWorkerId : null);
        var record = admission.Worker ?? throw Refuse(admission.Refusal, admission.Why);
        if (record.Replaces is int departed)
        {
            // NOTE: counted by the rule from the next step not yet begun; its first pull waits for it.
            run.Rule.WorkerJoined(record.Id);
            logger.LogInformation("worker {Id} joined: {Name}, in the place of worker {Departed}, which left: shard {Shard}, from the next step", record.Id, record.Name, departed, record.Shard);
        }
        else
        {
            logger.LogInformation("worker {Id} joined: {Name} ({Count}/{Expected})", record.Id, record.Name, run.Membership.Joined, run.Membership.Expected);
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
                DataFingerprint = run.DataFingerprint,
                DataSource = run.DataSource,
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
            // NOTE: a worker that leaves before the first step gives its place back (it found it
            // cannot take part: this machine lacks the server's data); the run waits for another,
            // as it waited before anyone joined. Workers that die are dropped for silence and end it.
            if (run.Store.Version > 0)
            {
                run.EndIfEveryWorkerHasGone();
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
