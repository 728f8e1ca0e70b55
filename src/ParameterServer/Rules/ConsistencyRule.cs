using System.Globalization;

namespace Cluster.ParameterServer.Rules;

/// <summary>An update the rule applied: how many samples it covered and their mean loss.</summary>
public readonly record struct AppliedUpdate(long Version, int Samples, float Loss, int Contributors);

/// <summary>
/// How gradients become updates: the one knob of the cluster. A rule decides when a pull may be
/// served (and with which snapshot) and what to do with each gradient that arrives; it is the only
/// code that calls <see cref="ParameterStore.Apply"/>, always under its lock.
/// </summary>
public abstract class ConsistencyRule
{
    /// <summary>Guards the rule's state and the store's updates.</summary>
    protected readonly object Gate = new();

    private readonly HashSet<int> _joining = [];

    internal AsyncCondition Changed { get; }

    /// <summary>Creates the rule over a store.</summary>
    protected ConsistencyRule(ParameterStore store, GradientPool pool, RunRecorder recorder)
    {
        Store = store;
        Pool = pool;
        Recorder = recorder;
        Changed = new AsyncCondition(Gate);
    }

    /// <summary>The weights.</summary>
    protected ParameterStore Store { get; }

    /// <summary>Where gradient buffers go back.</summary>
    protected GradientPool Pool { get; }

    /// <summary>What the run records.</summary>
    protected RunRecorder Recorder { get; }

    /// <summary>Called after each update, under the lock (the coordinator counts epochs there).</summary>
    public event Action<AppliedUpdate>? Applied;

    /// <summary>The rule's name as given to <c>--mode</c>.</summary>
    public abstract string Name { get; }

    /// <summary>True once the run is over; waiting pulls are released.</summary>
    public bool Finished { get; private set; }

    /// <summary>
    /// Waits until <paramref name="worker"/> may pull (never before <paramref name="minVersion"/>
    /// exists) and returns the snapshot to send, with a reference the caller releases.
    /// </summary>
    public abstract Task<WeightSnapshot> AcquireForPullAsync(int worker, long minVersion, CancellationToken cancel);

    /// <summary>Takes a complete, validated gradient.</summary>
    public abstract PushOutcome Submit(Gradient gradient);

    /// <summary>
    /// Whether the rule takes a push chunk by chunk as it arrives (<see cref="Open"/>,
    /// <see cref="ChunkArrived"/>, <see cref="Close"/>) rather than whole through <see cref="Submit"/>.
    /// </summary>
    public virtual bool TakesChunks => false;

    /// <summary>
    /// A push starts (its first chunk was checked): returns the contribution that its buffer
    /// <paramref name="values"/> now is, shared with the rule, or null with the reason it is not
    /// wanted (late, duplicate), in which case the buffer stays the caller's.
    /// </summary>
    public virtual Contribution? Open(int worker, long step, long baseVersion, float[] values, float loss, int samples, out PushOutcome refused) =>
        throw new NotSupportedException($"{Name} takes whole gradients");

    /// <summary>Chunk <paramref name="index"/> of <paramref name="contribution"/> was checked and copied into its buffer.</summary>
    public virtual void ChunkArrived(Contribution contribution, int index) =>
        throw new NotSupportedException($"{Name} takes whole gradients");

    /// <summary>The push is complete; the caller lets go of the buffer.</summary>
    public virtual PushOutcome Close(Contribution contribution) =>
        throw new NotSupportedException($"{Name} takes whole gradients");

    /// <summary>The push failed halfway: what it sent is taken out of every chunk not yet applied; the caller lets go of the buffer.</summary>
    public virtual void Abandon(Contribution contribution) =>
        throw new NotSupportedException($"{Name} takes whole gradients");

    /// <summary>How long <paramref name="worker"/>'s last complete gradient waited for the others of its step, in ms (0 when the rule does not record it).</summary>
    public virtual double StepWaitMs(int worker) => 0;

    /// <summary>A worker left: the rule stops waiting for it.</summary>
    public void WorkerLeft(int worker)
    {
        Recorder.WorkerLeft(worker);
        lock (Gate)
        {
            if (_joining.Remove(worker))
            {
                // Gone before it was ever counted.
                return;
            }
        }
        Departed(worker);
    }

    /// <summary>A worker that was counted left: the rule stops waiting for it.</summary>
    protected virtual void Departed(int worker)
    {
    }

    /// <summary>
    /// A worker took the place of one that left. A rule with steps counts it from the first step
    /// not yet begun, never halfway through one: until then its pulls wait (see <see cref="IsJoining"/>).
    /// </summary>
    public void WorkerJoined(int worker)
    {
        bool now;
        lock (Gate)
        {
            now = !StepInProgress;
            if (now)
            {
                Admit(1);
            }
            else
            {
                _joining.Add(worker);
            }
        }
        if (now)
        {
            Changed.NotifyAll();
        }
    }

    /// <summary>Whether some gradients of the next step are in already (under <see cref="Gate"/>). False for rules without steps.</summary>
    protected virtual bool StepInProgress => false;

    /// <summary>Counts <paramref name="workers"/> more workers from the next step on (under <see cref="Gate"/>).</summary>
    protected virtual void Admit(int workers)
    {
    }

    /// <summary>Under <see cref="Gate"/>, as a step completes: counts the workers that joined during it from the next one.</summary>
    protected void AdmitJoining()
    {
        if (_joining.Count > 0)
        {
            Admit(_joining.Count);
            _joining.Clear();
        }
    }

    /// <summary>Whether <paramref name="worker"/> joined during a step and is not counted yet (under <see cref="Gate"/>).</summary>
    protected bool IsJoining(int worker) => _joining.Contains(worker);

    /// <summary>Ends the run: every waiting pull is released.</summary>
    public void Finish()
    {
        lock (Gate)
        {
            Finished = true;
            Store.AbandonUpdate();
        }
        Changed.NotifyAll();
    }

    /// <summary>Applies <paramref name="update"/> and tells the listeners. Call under <see cref="Gate"/>.</summary>
    protected void ApplyUpdate(ReadOnlySpan<float> update, int samples, float loss, int contributors)
    {
        Store.Apply(update);
        Published(samples, loss, contributors);
    }

    /// <summary>Tells the listeners that a version was published. Call under <see cref="Gate"/>.</summary>
    protected void Published(int samples, float loss, int contributors) =>
        Applied?.Invoke(new AppliedUpdate(Store.Version, samples, loss, contributors));

    /// <summary>Creates the rule named by <paramref name="mode"/>: <c>sync</c>, <c>async</c> or <c>ssp:S</c>.</summary>
    public static ConsistencyRule Create(string mode, int workers, int backupWorkers, ParameterStore store, GradientPool pool, RunRecorder recorder)
    {
        var parsed = ConsistencyMode.Parse(mode);
        return parsed.Kind switch
        {
            // Backup workers choose whole gradients (the first N to arrive), clipping needs the whole norm.
            "sync" when backupWorkers == 0 && store.ClipNorm is null => new StreamingSyncRule(workers, store, pool, recorder),
            "sync" => new SyncRule(workers, backupWorkers, store, pool, recorder),
            "async" => new AsyncRule(store, pool, recorder),
            _ => new SspRule(parsed.Staleness, store, pool, recorder),
        };
    }
}

/// <summary>A parsed <c>--mode</c>: sync, async or ssp:S (S ≥ 0).</summary>
public readonly record struct ConsistencyMode(string Kind, int Staleness)
{
    /// <summary>Parses <paramref name="mode"/>; throws <see cref="ArgumentException"/> with a one-line message for anything else.</summary>
    public static ConsistencyMode Parse(string mode)
    {
        if (mode is "sync" or "async")
        {
            return new ConsistencyMode(mode, 0);
        }
        if (mode.StartsWith("ssp:", StringComparison.Ordinal)
            && int.TryParse(mode.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out int s) && s >= 0 && s <= 1000)
        {
            return new ConsistencyMode("ssp", s);
        }
        throw new ArgumentException($"--mode '{mode}' is not known: use sync, async or ssp:S with S a whole number from 0 to 1000 (e.g. ssp:2)");
    }
}
