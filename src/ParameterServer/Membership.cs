using Cluster.Wire;
using Grpc.Core;

namespace Cluster.ParameterServer;

/// <summary>One worker as the server knows it.</summary>
public sealed class WorkerRecord(int id, string name, int shard, int? replaces = null)
{
    /// <summary>Rank: 0 to N-1 for the first worker in each place (the one it asked for, or the lowest free), N and up for replacements, in join order; never reused, so a worker thought dead that comes back is not taken for its replacement.</summary>
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
/// What a join came to: the worker admitted, or why not, as the gRPC status the caller answers with.
/// </summary>
public readonly record struct Admission(WorkerRecord? Worker, StatusCode Refusal, string Why)
{
    internal static Admission Refused(StatusCode code, string why) => new(null, code, why);
}

/// <summary>
/// Who has joined, who is active, and when everyone expected is there. A worker may ask for its
/// rank (<c>cluster worker --rank R</c>, which <c>cluster local</c> gives each of its workers), so
/// that the same process reads the same shard from run to run; one that asks for none takes the
/// lowest rank still free. Once the cluster is full, a worker may still join in the place of one
/// that left (dead, dropped for silence): it reads the departed worker's shard, under a rank of its
/// own above the first N, which are never reused.
/// </summary>
public sealed class Membership(int expected)
{
    private readonly WorkerRecord?[] _places = new WorkerRecord?[expected];
    private readonly List<WorkerRecord> _replacements = [];
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _complete = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _joined;

    /// <summary>Workers the run waits for before the first pull is served.</summary>
    public int Expected => expected;

    /// <summary>Completes when every expected worker has joined.</summary>
    public Task AllJoined => _complete.Task;

    /// <summary>How many of the expected workers have joined so far.</summary>
    public int Joined
    {
        get
        {
            lock (_lock)
            {
                return _joined;
            }
        }
    }

    /// <summary>
    /// Admits a worker under the rank it asked for (<paramref name="rank"/>) or the lowest one free;
    /// once every rank is taken, in the place of the one that left (the one it asked for, or the
    /// first that left and has not been replaced yet). A rank out of range, or taken while the
    /// cluster is still filling, is refused; a full cluster with no place free for it is refused
    /// with <see cref="StatusCode.ResourceExhausted"/>, which the worker waits out. A worker the
    /// server let go that joins again (<paramref name="previous"/>, its rank then, under the same
    /// name) takes its own place back once the cluster is full, or learns at once, with
    /// <see cref="StatusCode.FailedPrecondition"/>, that another has taken it.
    /// </summary>
    public Admission Join(string name, double nowMs, int? rank = null, int? previous = null)
    {
        if (rank is int outside && (outside < 0 || outside >= expected))
        {
            return Admission.Refused(StatusCode.InvalidArgument, $"rank {outside} is out of range: this cluster's workers are ranks 0 to {expected - 1}");
        }
        lock (_lock)
        {
            bool filling = _joined < expected;
            if (previous is int former && FindLocked(former) is { } was && was.Name == name && !was.Active)
            {
                if (was.Replaced)
                {
                    var successor = Records().Last(w => w.Shard == was.Shard);
                    return Admission.Refused(StatusCode.FailedPrecondition, $"worker {former} ({name}) was let go and worker {successor.Id} ({successor.Name}) has taken its place: the run goes on without it");
                }
                if (!filling)
                {
                    return Replace(was, name, nowMs);
                }
            }
            if (rank is not int asked)
            {
                if (filling)
                {
                    return Admit(Array.IndexOf(_places, null), name, nowMs);
                }
                var departed = Records().FirstOrDefault(w => !w.Active && !w.Replaced);
                return departed is null
                    ? Admission.Refused(StatusCode.ResourceExhausted, $"the cluster is full: all {expected} workers have joined and none has left")
                    : Replace(departed, name, nowMs);
            }
            if (_places[asked] is null)
            {
                return Admit(asked, name, nowMs);
            }
            var holder = Records().First(w => w.Shard == asked && !w.Replaced);
            if (holder.Active)
            {
                // NOTE: while the cluster fills, two workers asking for one rank is a mistake in how
                // they were started; once it is full, the holder may be dead and not yet noticed.
                return filling
                    ? Admission.Refused(StatusCode.AlreadyExists, $"rank {asked} is taken by {holder.Name}: give each worker a --rank of its own")
                    : Admission.Refused(StatusCode.ResourceExhausted, $"rank {asked} is held by {holder.Name}, which is active");
            }
            return filling
                ? Admission.Refused(StatusCode.ResourceExhausted, $"rank {asked}'s worker ({holder.Name}) left; its place is free once every rank has joined")
                : Replace(holder, name, nowMs);
        }
    }

    /// <summary>The worker with rank <paramref name="id"/>, if it joined.</summary>
    public WorkerRecord? Find(int id)
    {
        lock (_lock)
        {
            return FindLocked(id);
        }
    }

    private WorkerRecord? FindLocked(int id) =>
        id < 0 ? null
        : id < expected ? _places[id]
        : id - expected < _replacements.Count ? _replacements[id - expected] : null;

    /// <summary>A copy of the list, in rank order.</summary>
    public WorkerRecord[] Snapshot()
    {
        lock (_lock)
        {
            return [.. Records()];
        }
    }

    /// <summary>Workers that joined and have not left.</summary>
    public int ActiveCount
    {
        get
        {
            lock (_lock)
            {
                return Records().Count(w => w.Active);
            }
        }
    }

    private IEnumerable<WorkerRecord> Records() => _places.OfType<WorkerRecord>().Concat(_replacements);

    private Admission Admit(int rank, string name, double nowMs)
    {
        var record = new WorkerRecord(rank, name, rank) { LastSeenMs = nowMs };
        _places[rank] = record;
        if (++_joined == expected)
        {
            _complete.TrySetResult();
        }
        return new Admission(record, StatusCode.OK, "");
    }

    private Admission Replace(WorkerRecord departed, string name, double nowMs)
    {
        departed.Replaced = true;
        var replacement = new WorkerRecord(expected + _replacements.Count, name, departed.Shard, departed.Id) { LastSeenMs = nowMs };
        _replacements.Add(replacement);
        return new Admission(replacement, StatusCode.OK, "");
    }
}
