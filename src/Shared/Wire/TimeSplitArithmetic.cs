namespace Cluster.Wire;

/// <summary>Sums and differences of time splits (the message of protos/cluster.proto): a worker's totals since a moment, the server's per-epoch split.</summary>
public sealed partial class TimeSplit
{
    /// <summary>Compute, push, pull and waiting together, in ms.</summary>
    public double TotalMs => ComputeMs + PushMs + PullMs + WaitMs;

    /// <summary>What this split holds beyond <paramref name="earlier"/>, a snapshot of the same totals taken before it.</summary>
    public TimeSplit Minus(TimeSplit earlier) => new()
    {
        ComputeMs = ComputeMs - earlier.ComputeMs,
        PushMs = PushMs - earlier.PushMs,
        PullMs = PullMs - earlier.PullMs,
        WaitMs = WaitMs - earlier.WaitMs,
        Steps = Steps - earlier.Steps,
        Samples = Samples - earlier.Samples,
    };

    /// <summary>Adds <paramref name="other"/> to this split.</summary>
    public void Add(TimeSplit other)
    {
        ComputeMs += other.ComputeMs;
        PushMs += other.PushMs;
        PullMs += other.PullMs;
        WaitMs += other.WaitMs;
        Steps += other.Steps;
        Samples += other.Samples;
    }
}
