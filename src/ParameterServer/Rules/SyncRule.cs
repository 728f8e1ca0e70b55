using System.Numerics.Tensors;

namespace Cluster.ParameterServer.Rules;

/// <summary>
/// Bulk-synchronous SGD (map-reduce): the server waits for the gradients of step t from the
/// workers, sums them in worker-rank order, averages, applies, and publishes t + 1. With backup
/// workers (N + b workers), the first N gradients of a step are used and later ones are dropped
/// and counted, so one straggler does not set the pace. The fixed summation order makes N workers
/// with batch B compute what one process computes on the concatenated batch N·B.
/// </summary>
public sealed class SyncRule : ConsistencyRule
{
    private readonly int _workers;
    private readonly int _backupWorkers;
    private readonly List<Gradient> _arrivals = [];
    private readonly float[] _sum;
    private int _departed;

    /// <summary>
    /// Creates the rule; a step completes with <paramref name="workers"/> gradients, of
    /// <paramref name="workers"/> + <paramref name="backupWorkers"/> workers.
    /// </summary>
    public SyncRule(int workers, int backupWorkers, ParameterStore store, GradientPool pool, RunRecorder recorder)
        : base(store, pool, recorder)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(backupWorkers);
        _workers = workers;
        _backupWorkers = backupWorkers;
        _sum = new float[store.Size];
    }

    /// <inheritdoc/>
    public override string Name => "sync";

    /// <summary>
    /// Gradients a step needs now: N while N workers are left (backup workers stand in for those
    /// that left), fewer after that.
    /// </summary>
    private int Required => Math.Max(1, Math.Min(_workers, _workers + _backupWorkers - _departed));

    /// <inheritdoc/>
    protected override bool StepInProgress => _arrivals.Count > 0;

    /// <inheritdoc/>
    protected override void Admit(int workers) => _departed -= workers;

    /// <inheritdoc/>
    public override async Task<WeightSnapshot> AcquireForPullAsync(int worker, long minVersion, CancellationToken cancel)
    {
        // A worker that joined during a step starts from the weights that step publishes.
        await Changed.WaitAsync(() => Finished || (Store.Version >= minVersion && !IsJoining(worker)), cancel).ConfigureAwait(false);
        return Store.Acquire();
    }

    /// <inheritdoc/>
    public override PushOutcome Submit(Gradient gradient)
    {
        PushOutcome outcome;
        lock (Gate)
        {
            if (gradient.BaseVersion < Store.Version || Finished)
            {
                Recorder.CountDroppedLate();
                Pool.Return(gradient.Values);
                return PushOutcome.DroppedLate;
            }
            if (_arrivals.Exists(g => g.Worker == gradient.Worker))
            {
                Pool.Return(gradient.Values);
                return PushOutcome.Duplicate;
            }
            Recorder.RecordArrival(gradient.Worker, gradient.BaseVersion);
            _arrivals.Add(gradient);
            outcome = TryCompleteStep() ? PushOutcome.Applied : PushOutcome.Queued;
        }
        if (outcome == PushOutcome.Applied)
        {
            Changed.NotifyAll();
        }
        return outcome;
    }

    /// <inheritdoc/>
    protected override void Departed(int worker)
    {
        bool applied;
        lock (Gate)
        {
            _departed++;
            applied = TryCompleteStep();
        }
        if (applied)
        {
            Changed.NotifyAll();
        }
    }

    private bool TryCompleteStep()
    {
        if (_arrivals.Count == 0 || _arrivals.Count < Required)
        {
            return false;
        }
        // NOTE: the first N to arrive are used, but summed in rank order, so the result does not
        // depend on which of them happened to arrive first.
        _arrivals.Sort((a, b) => a.Worker.CompareTo(b.Worker));
        _arrivals[0].Values.CopyTo(_sum, 0);
        int samples = _arrivals[0].Samples;
        double loss = _arrivals[0].Loss;
        for (int i = 1; i < _arrivals.Count; i++)
        {
            TensorPrimitives.Add(_sum, _arrivals[i].Values, _sum);
            samples += _arrivals[i].Samples;
            loss += _arrivals[i].Loss;
        }
        int contributors = _arrivals.Count;
        if (contributors > 1)
        {
            TensorPrimitives.Multiply(_sum, 1f / contributors, _sum);
        }
        Span<long> staleness = stackalloc long[contributors];
        staleness.Clear();
        foreach (var g in _arrivals)
        {
            Pool.Return(g.Values);
        }
        _arrivals.Clear();
        AdmitJoining();
        Recorder.RecordApplied(samples, (float)(loss / contributors), staleness);
        ApplyUpdate(_sum, samples, (float)(loss / contributors), contributors);
        return true;
    }
}
