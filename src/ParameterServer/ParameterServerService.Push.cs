using System.Buffers;
using Cluster.ParameterServer.Rules;
using Cluster.Wire;
using Grpc.Core;

namespace Cluster.ParameterServer;

/// <summary>How the service assembles a push from its chunks, on one stream or over a worker's push lanes.</summary>
public sealed partial class ParameterServerService
{
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
                if (_received == 0 && chunk.Time is { } time)
                {
                    if (!(double.IsFinite(time.TotalMs) && time.ComputeMs >= 0 && time.PushMs >= 0 && time.PullMs >= 0 && time.WaitMs >= 0 && time.Steps >= 0 && time.Samples >= 0))
                    {
                        throw service.Reject(StatusCode.InvalidArgument, $"push from worker {chunk.WorkerId} reports a time split of compute {time.ComputeMs}, push {time.PushMs}, pull {time.PullMs}, waiting {time.WaitMs} ms over {time.Steps} steps: need finite times and counts of 0 or more");
                    }
                    Run.WorkerTime.Report(chunk.WorkerId, time);
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
}
