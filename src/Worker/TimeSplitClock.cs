using System.Diagnostics;
using Cluster.Wire;

namespace Cluster.Worker;

/// <summary>
/// Accumulates a worker's time split, over the whole run and from a step on (<see cref="MarkSteadyStart"/>):
/// throughput benchmarks time the second half of a run, after every process's warm-up.
/// </summary>
public sealed class TimeSplitClock
{
    private readonly TimeSplit _split = new();
    private TimeSplit? _atSteadyStart;

    /// <summary>Adds one step's parts.</summary>
    public void Add(double computeMs, double pushMs, double pullMs, double waitMs, int samples)
    {
        lock (_split)
        {
            _split.ComputeMs += computeMs;
            _split.PushMs += pushMs;
            _split.PullMs += pullMs;
            _split.WaitMs += waitMs;
            _split.Steps++;
            _split.Samples += samples;
        }
    }

    /// <summary>Adds a pull that belongs to no step (the first one).</summary>
    public void AddPull(double pullMs, double waitMs)
    {
        lock (_split)
        {
            _split.PullMs += Math.Max(0, pullMs - waitMs);
            _split.WaitMs += Math.Min(pullMs, waitMs);
        }
    }

    /// <summary>A copy of the totals.</summary>
    public TimeSplit Snapshot()
    {
        lock (_split)
        {
            return _split.Clone();
        }
    }

    /// <summary>The steady part starts now: <see cref="SteadySnapshot"/> counts from here (the first call only).</summary>
    public void MarkSteadyStart()
    {
        lock (_split)
        {
            _atSteadyStart ??= _split.Clone();
        }
    }

    /// <summary>The totals since <see cref="MarkSteadyStart"/>; empty before it.</summary>
    public TimeSplit SteadySnapshot()
    {
        lock (_split)
        {
            if (_atSteadyStart is not { } start)
            {
                return new TimeSplit();
            }
            return _split.Minus(start);
        }
    }

    /// <summary>Milliseconds since <paramref name="start"/> (a Stopwatch timestamp).</summary>
    public static double Since(long start) => Stopwatch.GetElapsedTime(start).TotalMilliseconds;
}
