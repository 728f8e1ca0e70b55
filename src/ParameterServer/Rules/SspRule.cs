namespace Cluster.ParameterServer.Rules;

/// <summary>
/// Stale-synchronous SGD with a hard bound: asynchronous, but no applied gradient is staler than
/// S versions. Each worker between its pull and the apply of its gradient holds a lease on the
/// version it pulled; every update applied in the meantime uses up one unit of the lease's budget
/// of S. An update is applied only if the leases left can still all finish within budget, and a
/// pull (a new lease) waits while that would not be so: a worker that is too far ahead waits on
/// pull until the slow one has pushed. With N workers at most S + 1 compute at once.
/// </summary>
public sealed class SspRule : ConsistencyRule
{
    private readonly int _bound;
    private readonly Dictionary<int, long> _leases = [];
    private readonly List<Gradient> _queued = [];
    private readonly List<int> _budgets = [];

    /// <summary>Creates the rule with staleness bound <paramref name="bound"/>.</summary>
    public SspRule(int bound, ParameterStore store, GradientPool pool, RunRecorder recorder)
        : base(store, pool, recorder)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bound);
        _bound = bound;
    }

    /// <inheritdoc/>
    public override string Name => $"ssp:{_bound}";

    /// <inheritdoc/>
    public override async Task<WeightSnapshot> AcquireForPullAsync(int worker, long minVersion, CancellationToken cancel)
    {
        WeightSnapshot? snapshot = null;
        await Changed.WaitAsync(() =>
        {
            if (Finished)
            {
                snapshot = Store.Acquire();
                return true;
            }
            // Its own last gradient must be applied first, and a new lease must keep every lease feasible.
            if (_queued.Exists(g => g.Worker == worker) || !Feasible(worker, applying: false, extraFreshLease: true))
            {
                return false;
            }
            _leases[worker] = Store.Version;
            snapshot = Store.Acquire();
            return true;
        }, cancel).ConfigureAwait(false);
        return snapshot!;
    }

    /// <inheritdoc/>
    public override PushOutcome Submit(Gradient gradient)
    {
        PushOutcome outcome;
        lock (Gate)
        {
            if (Finished)
            {
                Pool.Return(gradient.Values);
                return PushOutcome.DroppedLate;
            }
            if (_queued.Exists(g => g.Worker == gradient.Worker))
            {
                Pool.Return(gradient.Values);
                return PushOutcome.Duplicate;
            }
            // A worker that pushes without a lease (it never pulled) is treated as holding one on its base version.
            _leases.TryAdd(gradient.Worker, gradient.BaseVersion);
            _queued.Add(gradient);
            ApplyWhatCan();
            outcome = _queued.Contains(gradient) ? PushOutcome.Queued : PushOutcome.Applied;
        }
        Changed.NotifyAll();
        return outcome;
    }

    /// <inheritdoc/>
    protected override void Departed(int worker)
    {
        lock (Gate)
        {
            _leases.Remove(worker);
            int index = _queued.FindIndex(g => g.Worker == worker);
            if (index >= 0)
            {
                Pool.Return(_queued[index].Values);
                _queued.RemoveAt(index);
            }
            ApplyWhatCan();
        }
        Changed.NotifyAll();
    }

    /// <summary>Applies queued gradients, oldest lease first, while the bound allows. Under the lock.</summary>
    private bool ApplyWhatCan()
    {
        bool any = false;
        while (true)
        {
            _queued.Sort((a, b) => a.BaseVersion != b.BaseVersion ? a.BaseVersion.CompareTo(b.BaseVersion) : a.Worker.CompareTo(b.Worker));
            var next = _queued.Find(g => Store.Version - g.BaseVersion <= _bound && Feasible(g.Worker, applying: true, extraFreshLease: false));
            if (next is null)
            {
                return any;
            }
            _queued.Remove(next);
            _leases.Remove(next.Worker);
            Span<long> staleness = [Store.Version - next.BaseVersion];
            Recorder.RecordApplied(next.Samples, next.Loss, staleness, next.Worker);
            ApplyUpdate(next.Values, next.Samples, next.Loss, 1);
            Pool.Return(next.Values);
            any = true;
        }
    }

    /// <summary>
    /// Whether all leases can still be applied within the bound, leaving out
    /// <paramref name="worker"/>'s own: if <paramref name="applying"/>, its gradient is applied
    /// first (using one unit of every other lease's budget); with
    /// <paramref name="extraFreshLease"/>, it takes a new lease of full budget. Sorting the
    /// budgets r ascending must give r(k) ≥ k for k = 0, 1, ... (the k-th to be applied sees k
    /// applies before it).
    /// </summary>
    private bool Feasible(int worker, bool applying, bool extraFreshLease)
    {
        long version = Store.Version;
        _budgets.Clear();
        foreach (var (holder, baseVersion) in _leases)
        {
            if (holder != worker)
            {
                _budgets.Add((int)(_bound - (version - baseVersion)) - (applying ? 1 : 0));
            }
        }
        if (extraFreshLease)
        {
            _budgets.Add(_bound);
        }
        _budgets.Sort();
        for (int k = 0; k < _budgets.Count; k++)
        {
            if (_budgets[k] < k)
            {
                return false;
            }
        }
        return true;
    }
}
