using System.Diagnostics;
using System.Numerics.Tensors;

namespace Cluster.ParameterServer.Rules;

/// <summary>
/// Bulk-synchronous SGD applied chunk by chunk as the gradients stream in (what Cluster runs for
/// <c>--mode sync</c> without backup workers or clipping). Workers send each gradient chunk as soon
/// as backward has made it final, the last layers first; as soon as every worker's chunk k of step
/// t is in, the server sums chunk k in worker-rank order, averages it, updates that part of the
/// weights and marks chunk k of version t + 1 ready, and the workers' pulls, already waiting, stream
/// it back. Most of the aggregation, the update and the pull so overlap the first layers' backward,
/// as in priority-based parameter propagation; only the chunks that become final last are on the
/// critical path. The update is element-wise, so the result is bit for bit the one of
/// <see cref="SyncRule"/>: N workers with batch B compute what one process computes on N·B.
/// </summary>
/// <remarks>
/// A chunk's values reach the weights only after the push has checked them; a push refused halfway
/// (NaN in a later chunk, a stream cut off) is taken out of every chunk not yet applied, and the
/// step completes without that worker once it is gone, as when a worker dies.
/// </remarks>
public sealed class StreamingSyncRule : ConsistencyRule
{
    private readonly int _workers;
    private readonly List<Contribution> _step = [];
    private readonly int[] _arrived;
    private readonly bool[] _applied;
    private readonly float[] _sum;
    private readonly Dictionary<int, double> _waitMs = [];
    private int _appliedCount;
    private int _departed;

    /// <summary>Creates the rule; a step completes with <paramref name="workers"/> gradients.</summary>
    public StreamingSyncRule(int workers, ParameterStore store, GradientPool pool, RunRecorder recorder)
        : base(store, pool, recorder)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        _workers = workers;
        _arrived = new int[store.ChunkCount];
        _applied = new bool[store.ChunkCount];
        _sum = new float[Enumerable.Range(0, store.ChunkCount).Max(i => store.Chunk(i).Length)];
    }

    /// <inheritdoc/>
    public override string Name => "sync";

    /// <inheritdoc/>
    public override bool TakesChunks => true;

    /// <summary>Gradients a step needs now: N, fewer once workers have left (until others take their places).</summary>
    private int Required => Math.Max(1, _workers - _departed);

    /// <inheritdoc/>
    protected override bool StepInProgress => Store.IsUpdating;

    /// <inheritdoc/>
    protected override void Admit(int workers) => _departed -= workers;

    /// <inheritdoc/>
    public override async Task<WeightSnapshot> AcquireForPullAsync(int worker, long minVersion, CancellationToken cancel)
    {
        WeightSnapshot? snapshot = null;
        // NOTE: a pull for the version being built is answered chunk by chunk as the chunks are applied.
        // A worker that joined during a step starts from the weights that step publishes.
        await Changed.WaitAsync(() => (Finished || !IsJoining(worker))
                && (snapshot = Finished || Store.Version >= minVersion ? Store.Acquire() : Store.AcquireBuilding(minVersion)) is not null, cancel)
            .ConfigureAwait(false);
        return snapshot!;
    }

    /// <inheritdoc/>
    public override double StepWaitMs(int worker)
    {
        lock (Gate)
        {
            return _waitMs.GetValueOrDefault(worker);
        }
    }

    /// <inheritdoc/>
    public override PushOutcome Submit(Gradient gradient)
    {
        var contribution = Open(gradient.Worker, gradient.Step, gradient.BaseVersion, gradient.Values, gradient.Loss, gradient.Samples, holders: 1, out var refused);
        if (contribution is null)
        {
            Pool.Return(gradient.Values);
            return refused;
        }
        // A whole gradient is its chunks in backward order.
        for (int i = Store.ChunkCount - 1; i >= 0; i--)
        {
            ChunkArrived(contribution, i);
        }
        lock (Gate)
        {
            return contribution.Dropped ? PushOutcome.DroppedLate : contribution.StepDone ? PushOutcome.Applied : PushOutcome.Queued;
        }
    }

    /// <inheritdoc/>
    public override Contribution? Open(int worker, long step, long baseVersion, float[] values, float loss, int samples, out PushOutcome refused) =>
        Open(worker, step, baseVersion, values, loss, samples, holders: 2, out refused);

    private Contribution? Open(int worker, long step, long baseVersion, float[] values, float loss, int samples, int holders, out PushOutcome refused)
    {
        bool started = false;
        Contribution contribution;
        lock (Gate)
        {
            if (Finished || baseVersion < Store.Version)
            {
                Recorder.CountDroppedLate();
                refused = PushOutcome.DroppedLate;
                return null;
            }
            if (_step.Exists(c => c.Worker == worker))
            {
                refused = PushOutcome.Duplicate;
                return null;
            }
            if (!Store.IsUpdating)
            {
                Store.BeginUpdate();
                started = true;
            }
            contribution = new Contribution(worker, baseVersion, values, loss, samples, Store.ChunkCount, holders);
            // Kept in rank order: each chunk is summed in that order, whatever the arrival order.
            int at = _step.FindIndex(c => c.Worker > worker);
            _step.Insert(at < 0 ? _step.Count : at, contribution);
            refused = default;
        }
        if (started)
        {
            // Pulls waiting for this version can attach to it now.
            Changed.NotifyAll();
        }
        return contribution;
    }

    /// <inheritdoc/>
    public override void ChunkArrived(Contribution contribution, int index)
    {
        bool completed = false;
        lock (Gate)
        {
            if (contribution.Dropped || contribution.StepDone || contribution.Has[index])
            {
                return;
            }
            contribution.Has[index] = true;
            if (++contribution.Received == contribution.Has.Length)
            {
                contribution.CompletedAt = Stopwatch.GetTimestamp();
                Recorder.RecordArrival(contribution.Worker, contribution.BaseVersion);
            }
            if (!_applied[index] && ++_arrived[index] >= Required)
            {
                completed = ApplyChunk(index);
            }
        }
        if (completed)
        {
            Changed.NotifyAll();
        }
    }

    /// <inheritdoc/>
    public override PushOutcome Close(Contribution contribution)
    {
        lock (Gate)
        {
            var outcome = contribution.Dropped ? PushOutcome.DroppedLate : contribution.StepDone ? PushOutcome.Applied : PushOutcome.Queued;
            ReleaseHold(contribution);
            return outcome;
        }
    }

    /// <inheritdoc/>
    public override void Abandon(Contribution contribution)
    {
        lock (Gate)
        {
            if (!contribution.StepDone && !contribution.Dropped)
            {
                Drop(contribution);
            }
            ReleaseHold(contribution);
        }
    }

    /// <inheritdoc/>
    protected override void Departed(int worker)
    {
        bool completed = false;
        lock (Gate)
        {
            _departed++;
            if (_step.Find(c => c.Worker == worker && c.Received < c.Has.Length) is { } partial)
            {
                Drop(partial);
            }
            for (int i = _applied.Length - 1; i >= 0 && !completed; i--)
            {
                if (!_applied[i] && _arrived[i] > 0 && _arrived[i] >= Required)
                {
                    completed = ApplyChunk(i);
                }
            }
        }
        if (completed)
        {
            Changed.NotifyAll();
        }
    }

    /// <summary>Takes a partial gradient out of the chunks not yet applied. Under the lock.</summary>
    private void Drop(Contribution contribution)
    {
        contribution.Dropped = true;
        for (int i = 0; i < _applied.Length; i++)
        {
            if (contribution.Has[i] && !_applied[i])
            {
                _arrived[i]--;
            }
        }
        _step.Remove(contribution);
        ReleaseHold(contribution);
    }

    private void ReleaseHold(Contribution contribution)
    {
        if (--contribution.Holders == 0)
        {
            Pool.Return(contribution.Values);
        }
    }

    /// <summary>Sums, averages and applies chunk <paramref name="index"/>; true when that completed the step. Under the lock.</summary>
    private bool ApplyChunk(int index)
    {
        var (offset, length) = Store.Chunk(index);
        var sum = _sum.AsSpan(0, length);
        // The first contributor is read in place: alone it is applied as it is, and with others
        // the first addition writes the sum, so no pass copies it (same sums, same order).
        ReadOnlySpan<float> first = default;
        int contributors = 0;
        foreach (var c in _step)
        {
            if (!c.Has[index])
            {
                continue;
            }
            var values = c.Values.AsSpan(offset, length);
            switch (contributors++)
            {
                case 0:
                    first = values;
                    break;
                case 1:
                    TensorPrimitives.Add(first, values, sum);
                    break;
                default:
                    TensorPrimitives.Add(sum, values, sum);
                    break;
            }
        }
        if (contributors > 1)
        {
            TensorPrimitives.Multiply(sum, 1f / contributors, sum);
        }
        Store.ApplyChunk(index, contributors == 1 ? first : sum);
        _applied[index] = true;
        if (++_appliedCount < _applied.Length)
        {
            Store.MarkReady(index);
            return false;
        }
        CompleteStep(index);
        return true;
    }

    private void CompleteStep(int lastChunk)
    {
        long now = Stopwatch.GetTimestamp();
        int samples = 0;
        double loss = 0;
        foreach (var c in _step)
        {
            samples += c.Samples;
            loss += c.Loss;
            _waitMs[c.Worker] = c.CompletedAt > 0 ? Stopwatch.GetElapsedTime(c.CompletedAt, now).TotalMilliseconds : 0;
        }
        int contributors = _step.Count;
        float meanLoss = (float)(loss / Math.Max(1, contributors));
        Span<long> staleness = stackalloc long[contributors];
        staleness.Clear();
        Recorder.RecordApplied(samples, meanLoss, staleness);
        var published = Store.EndUpdate();
        foreach (var c in _step)
        {
            c.StepDone = true;
            ReleaseHold(c);
        }
        _step.Clear();
        Array.Clear(_arrived);
        Array.Clear(_applied);
        _appliedCount = 0;
        AdmitJoining();
        Published(samples, meanLoss, contributors);
        // NOTE: the last chunk is marked ready after the listeners ran, so that a pull which
        // receives it also sees whether the run has just ended.
        published.MarkReady(lastChunk);
    }
}

/// <summary>
/// One worker's gradient of one step as it arrives chunk by chunk, shared by the push that fills
/// its buffer and the rule that sums it: the buffer goes back to the pool when both let go.
/// </summary>
public sealed class Contribution
{
    internal Contribution(int worker, long baseVersion, float[] values, float loss, int samples, int chunks, int holders)
    {
        Worker = worker;
        BaseVersion = baseVersion;
        Values = values;
        Loss = loss;
        Samples = samples;
        Has = new bool[chunks];
        Holders = holders;
    }

    /// <summary>The worker's rank.</summary>
    public int Worker { get; }

    /// <summary>The weights version the gradient was computed from.</summary>
    public long BaseVersion { get; }

    /// <summary>The gradient, filled chunk by chunk.</summary>
    public float[] Values { get; }

    /// <summary>The batch's mean loss.</summary>
    public float Loss { get; }

    /// <summary>Samples in the batch.</summary>
    public int Samples { get; }

    internal bool[] Has { get; }

    internal int Received { get; set; }

    internal long CompletedAt { get; set; }

    internal bool Dropped { get; set; }

    internal bool StepDone { get; set; }

    internal int Holders { get; set; }
}
