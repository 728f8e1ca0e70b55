using Cluster.Wire;

namespace Cluster.ParameterServer;

/// <summary>One worker as the server knows it.</summary>
public sealed class WorkerRecord(int id, string name)
{
    /// <summary>Rank, from 0, in join order.</summary>
    public int Id { get; } = id;

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

/// <summary>Who has joined, who is active, and when everyone expected is there.</summary>
public sealed class Membership(int expected)
{
    private readonly List<WorkerRecord> _workers = [];
    private readonly TaskCompletionSource _complete = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Workers the run waits for before the first pull is served.</summary>
    public int Expected => expected;

    /// <summary>Completes when every expected worker has joined.</summary>
    public Task AllJoined => _complete.Task;

    /// <summary>Admits a worker, or returns null when the cluster is full.</summary>
    public WorkerRecord? Join(string name, double nowMs)
    {
        lock (_workers)
        {
            if (_workers.Count >= expected)
            {
                return null;
            }
            var record = new WorkerRecord(_workers.Count, name) { LastSeenMs = nowMs };
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
