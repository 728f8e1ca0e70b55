using Cluster.Wire;

namespace Cluster.ParameterServer;

/// <summary>
/// The workers' time split summed over the run, from the running totals each worker sends with
/// its pushes, so that the server can cut it at each epoch's end (the <c>--metrics</c> file's
/// per-epoch split). A worker's first report is its baseline: a worker that outlived a server
/// restart brings totals from before it, which belong to epochs already written. Totals that go
/// back (a new process in a worker's place) start that worker's count again.
/// </summary>
public sealed class TimeSplitLedger
{
    private readonly Dictionary<int, TimeSplit> _last = [];
    private readonly TimeSplit _sum = new();

    /// <summary>Takes <paramref name="totals"/>, worker <paramref name="worker"/>'s split over all its steps so far.</summary>
    public void Report(int worker, TimeSplit totals)
    {
        lock (_sum)
        {
            if (_last.TryGetValue(worker, out var last))
            {
                // NOTE: totals that went back are a new process in the worker's place, counting from 0.
                _sum.Add(totals.Steps < last.Steps ? totals : totals.Minus(last));
            }
            _last[worker] = totals;
        }
    }

    /// <summary>A copy of the sum so far.</summary>
    public TimeSplit Snapshot()
    {
        lock (_sum)
        {
            return _sum.Clone();
        }
    }
}
