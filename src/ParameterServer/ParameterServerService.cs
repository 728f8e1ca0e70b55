using Cluster.ParameterServer.Rules;
using Cluster.Wire;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Cluster.ParameterServer;

/// <summary>
/// The gRPC face of the parameter server. It validates every request before it touches state: an
/// unknown worker, a chunk out of order or of the wrong length, NaN or Inf in a gradient, a version
/// from the future are each refused with a precise status, logged and counted, and since the rule
/// only ever sees complete, valid gradients the weights are never touched by a bad push.
/// </summary>
public sealed class ParameterServerService(TrainingCoordinator run, ILogger<ParameterServerService> logger)
    : Wire.ParameterServer.ParameterServerBase
{
    private int ChunkFloats => run.Options.ChunkFloats;

    private int ChunkCount => (run.Store.Size + ChunkFloats - 1) / ChunkFloats;

    /// <inheritdoc/>
    public override Task<JoinReply> Join(JoinRequest request, ServerCallContext context)
    {
        var record = run.Membership.Join(request.WorkerName, run.Recorder.NowMs)
            ?? throw Refuse(StatusCode.ResourceExhausted, $"the cluster is full: all {run.Membership.Expected} workers have joined");
        logger.LogInformation("worker {Id} joined: {Name} ({Count}/{Expected})", record.Id, record.Name, record.Id + 1, run.Membership.Expected);
        var t = run.Options.Training;
        return Task.FromResult(new JoinReply
        {
            WorkerId = record.Id,
            WorkerCount = run.Membership.Expected,
            ShardIndex = record.Id,
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
                TotalSteps = run.TotalSamples,
                Compute = run.Options.Compute,
                EmulatedComputeMs = run.Options.EmulatedComputeMs,
                Threads = run.Options.WorkerThreads,
            },
        });
    }

    /// <inheritdoc/>
    public override async Task Pull(PullRequest request, IServerStreamWriter<WeightChunk> responseStream, ServerCallContext context)
    {
        var worker = Known(request.WorkerId);
        if (request.MinVersion > run.Store.Version + 1)
        {
            throw Reject(StatusCode.FailedPrecondition, $"pull from worker {worker.Id} asks for version {request.MinVersion} but the server is at {run.Store.Version}: a version from the future");
        }
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        await run.Membership.AllJoined.WaitAsync(context.CancellationToken).ConfigureAwait(false);
        var snapshot = await run.Rule.AcquireForPullAsync(worker.Id, request.MinVersion, context.CancellationToken).ConfigureAwait(false);
        double waited = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        try
        {
            int count = ChunkCount;
            var bytes = snapshot.Bytes.AsMemory();
            for (int i = 0; i < count; i++)
            {
                int offset = i * ChunkFloats * sizeof(float);
                int length = Math.Min(ChunkFloats * sizeof(float), bytes.Length - offset);
                await responseStream.WriteAsync(new WeightChunk
                {
                    Version = snapshot.Version,
                    Index = i,
                    Count = count,
                    Data = UnsafeByteOperations.UnsafeWrap(bytes.Slice(offset, length)),
                    Finished = run.Rule.Finished,
                    WaitedMs = i == 0 ? waited : 0,
                }).ConfigureAwait(false);
            }
        }
        finally
        {
            snapshot.Release();
        }
        worker.LastSeenMs = run.Recorder.NowMs;
    }

    /// <inheritdoc/>
    public override async Task<PushReply> Push(IAsyncStreamReader<GradientChunk> requestStream, ServerCallContext context)
    {
        float[]? buffer = null;
        try
        {
            int expected = ChunkCount;
            int received = 0;
            GradientChunk? first = null;
            while (await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
            {
                var chunk = requestStream.Current;
                if (first is null)
                {
                    first = chunk;
                    Known(chunk.WorkerId);
                    if (chunk.Count != expected)
                    {
                        throw Reject(StatusCode.InvalidArgument, $"push from worker {chunk.WorkerId} announces {chunk.Count} chunks; a gradient of {run.Store.Size} floats is {expected} chunks of {ChunkFloats}");
                    }
                    if (chunk.BaseVersion > run.Store.Version || chunk.BaseVersion < 0)
                    {
                        throw Reject(StatusCode.FailedPrecondition, $"push from worker {chunk.WorkerId} is based on version {chunk.BaseVersion} but the server is at {run.Store.Version}: a version from the future");
                    }
                    buffer = run.Pool.Rent();
                }
                else if (chunk.WorkerId != first.WorkerId || chunk.Step != first.Step || chunk.BaseVersion != first.BaseVersion)
                {
                    throw Reject(StatusCode.InvalidArgument, $"push from worker {first.WorkerId} changes its worker, step or base version in chunk {chunk.Index}");
                }
                if (chunk.Index != received)
                {
                    throw Reject(StatusCode.InvalidArgument, $"push from worker {first.WorkerId}: chunk {chunk.Index} arrived where chunk {received} was expected (out of order)");
                }
                if (received == 0 && (chunk.Samples < 1 || !float.IsFinite(chunk.Loss)))
                {
                    throw Reject(StatusCode.InvalidArgument, $"push from worker {chunk.WorkerId} reports {chunk.Samples} samples and loss {chunk.Loss}: need at least 1 sample and a finite loss");
                }
                int offset = received * ChunkFloats;
                int floats = Math.Min(ChunkFloats, run.Store.Size - offset);
                if (chunk.Data.Length != floats * sizeof(float))
                {
                    throw Reject(StatusCode.InvalidArgument, $"push from worker {first.WorkerId}: chunk {chunk.Index} holds {chunk.Data.Length} bytes; expected {floats * sizeof(float)} ({floats} floats)");
                }
                var target = buffer.AsSpan(offset, floats);
                FloatBytes.CopyTo(chunk.Data.Span, target);
                if (!FloatBytes.AllFinite(target))
                {
                    throw Reject(StatusCode.InvalidArgument, $"push from worker {first.WorkerId}: chunk {chunk.Index} holds NaN or Inf; the gradient is refused and the weights are untouched");
                }
                received++;
            }
            if (first is null || received != expected)
            {
                throw Reject(StatusCode.InvalidArgument, $"push from worker {first?.WorkerId.ToString() ?? "?"} ended after {received} of {expected} chunks");
            }
            var worker = Known(first.WorkerId);
            worker.Pushes++;
            worker.LastSeenMs = run.Recorder.NowMs;
            var gradient = new Gradient(first.WorkerId, first.Step, first.BaseVersion, buffer!, first.Loss, first.Samples);
            buffer = null;
            var outcome = run.Rule.Submit(gradient);
            return new PushReply { Version = run.Store.Version, Outcome = OutcomeName(outcome) };
        }
        finally
        {
            if (buffer is not null)
            {
                run.Pool.Return(buffer);
            }
        }
    }

    /// <inheritdoc/>
    public override Task<HeartbeatReply> Heartbeat(HeartbeatRequest request, ServerCallContext context)
    {
        var worker = Known(request.WorkerId);
        worker.Time = request.Time ?? new TimeSplit();
        worker.LastSeenMs = run.Recorder.NowMs;
        return Task.FromResult(new HeartbeatReply { Finished = run.Rule.Finished });
    }

    /// <inheritdoc/>
    public override Task<LeaveReply> Leave(LeaveRequest request, ServerCallContext context)
    {
        var worker = Known(request.WorkerId);
        if (worker.Active)
        {
            worker.Active = false;
            run.Rule.WorkerLeft(worker.Id);
            logger.LogInformation("worker {Id} left ({Active} active)", worker.Id, run.Membership.ActiveCount);
        }
        return Task.FromResult(new LeaveReply());
    }

    /// <inheritdoc/>
    public override Task<StatusReply> Status(StatusRequest request, ServerCallContext context)
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
