using Cluster.Wire;

namespace Cluster.ParameterServer;

/// <summary>One worker as the server knows it.</summary>
public sealed class WorkerRecord(int id, string name, int shard, int? replaces = null)
{
    /// <summary>Rank, from 0, in join order; never reused, so a worker thought dead that comes back is not taken for its replacement.</summary>
    public int Id { get; } = id;

    /// <summary>The shard of the training data it reads: its rank, or that of the worker it replaced.</summary>
    public int Shard { get; } = shard;

    /// <summary>The worker that had left whose place (and shard) it took, if it joined as a replacement.</summary>
    public int? Replaces { get; } = replaces;

    /// <summary>Set once another worker has taken this one's place.</summary>
    public bool Replaced { get; set; }

    /// <summary>What the worker called itself (host:pid).</summary>
    public string Name { get; } = name;

    /// <summary>False once it left.</summary>
    public bool Active { get; set; } = true;

    /// <summary>Gradients it pushed.</summary>
    public long Pushes { get; set; }

    /// <summary>Its latest reported time split.</summary>
    public TimeSplit Time { get; set; } = new();

    /// <summary>Its latest reported time split over the second half of its steps (empty before then).</summary>
    public TimeSplit SteadyTime { get; set; } = new();

    /// <summary>When it last spoke, in ms since the run started.</summary>
    public double LastSeenMs { get; set; }

    /// <summary>The push its exchange streams are delivering now (the server's own bookkeeping; null between pushes).</summary>
    internal object? PendingPush { get; set; }
}

/// <summary>
/// Who has joined, who is active, and when everyone expected is there. Once the cluster is full, a
/// worker may still join in the place of one that left (dead, dropped for silence): it reads the
/// departed worker's shard, under a rank of its own.
/// </summary>
public sealed class Membership(int expected)
{
    private readonly List<WorkerRecord> _workers = [];
    private readonly TaskCompletionSource _complete = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Workers the run waits for before the first pull is served.</summary>
    public int Expected => expected;

    /// <summary>Completes when every expected worker has joined.</summary>
    public Task AllJoined => _complete.Task;

    /// <summary>
    /// Admits a worker: one of the expected ones, or, once they have all joined, one that takes the
    /// place of the first that left and has not been replaced yet. Null when every place is taken.
    /// </summary>
    public WorkerRecord? Join(string name, double nowMs)
    {
        lock (_workers)
        {
            if (_workers.Count >= expected)
            {
                var departed = _workers.Find(w => !w.Active && !w.Replaced);
                if (departed is null)
                {
                    return null;
                }
                departed.Replaced = true;
                var replacement = new WorkerRecord(_workers.Count, name, departed.Shard, departed.Id) { LastSeenMs = nowMs };
                _workers.Add(replacement);
                return replacement;
            }
            var record = new WorkerRecord(_workers.Count, name, _workers.Count) { LastSeenMs = nowMs };
            _workers.Add(record);
            if (_workers.Count == expected)
            {
                _complete.TrySetResult();
            }
            return record;
        }
    }

    /// <summary>The worker with rank <paramref name="id"/>, if it joined.</summary>
    public WorkerRecord? Find(int id)
    {
        lock (_workers)
        {
            return id >= 0 && id < _workers.Count ? _workers[id] : null;
        }
    }

    /// <summary>A copy of the list.</summary>
    public WorkerRecord[] Snapshot()
    {
        lock (_workers)
        {
            return [.. _workers];
        }
    }

    /// <summary>Workers that joined and have not left.</summary>
    public int ActiveCount
    {
        get
        {
            lock (_workers)
            {
                return _workers.Count(w => w.Active);
            }
        }
    }
}
