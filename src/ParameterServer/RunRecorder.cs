using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cluster.Wire;

namespace Cluster.ParameterServer;

/// <summary>
/// What the server records about a run, for <c>status</c>, the live view and the metrics file:
/// each worker's arrival time within a step, the staleness of every applied gradient, step times,
/// rejected and late pushes, and the test evaluation after each epoch. Thread-safe.
/// </summary>
public sealed class RunRecorder
{
    private readonly object _lock = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<long> _staleness = [];
    private readonly List<EpochStatus> _epochs = [];
    private readonly Dictionary<int, double> _lastArrivalMs = [];
    private long _stepStart = -1;
    private double _firstArrivalMs;
    private double _lastApplyMs = -1;
    private readonly List<double> _stepMs = [];
    private double _stepMsSum;
    private long _stepCount;
    private long _samples;
    private readonly StragglerWatch _stragglers = new();
    private readonly Dictionary<int, (long Sum, long Count)> _workerStaleness = [];
    private readonly Histogram<double>? _stepSeconds;
    private readonly Histogram<long>? _stalenessVersions;

    /// <summary>A recorder; with a <paramref name="meter"/>, step times and staleness are also recorded as its histograms.</summary>
    public RunRecorder(Meter? meter = null)
    {
        _stepSeconds = meter?.CreateHistogram("cluster.step.duration", "s", "time from one update of the weights to the next",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2, 5, 10] });
        _stalenessVersions = meter?.CreateHistogram("cluster.gradient.staleness", "{version}", "versions the weights moved on between a gradient's pull and its application",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64] });
    }

    /// <summary>Seconds since the run started.</summary>
    public double Seconds => _clock.Elapsed.TotalSeconds;

    /// <summary>Milliseconds since the run started.</summary>
    public double NowMs => _clock.Elapsed.TotalMilliseconds;

    /// <summary>Pushes refused as invalid (bad length, order, NaN, unknown worker, future version).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    private long _rejected;
    private long _unauthenticated;

    /// <summary>Calls refused for a missing or wrong cluster token.</summary>
    public long Unauthenticated => Interlocked.Read(ref _unauthenticated);
    private long _droppedLate;

    /// <summary>Pushes that arrived after their step was complete and were dropped.</summary>
    public long DroppedLate => Interlocked.Read(ref _droppedLate);

    /// <summary>Samples covered by applied updates.</summary>
    public long Samples => Interlocked.Read(ref _samples);

    /// <summary>The mean loss of the last applied update.</summary>
    public float LastLoss { get; private set; }

    /// <summary>Counts an invalid push.</summary>
    public void CountRejected() => Interlocked.Increment(ref _rejected);

    /// <summary>Counts a call refused for its cluster token.</summary>
    public void CountUnauthenticated() => Interlocked.Increment(ref _unauthenticated);

    /// <summary>Counts a push dropped as late.</summary>
    public void CountDroppedLate() => Interlocked.Increment(ref _droppedLate);

    /// <summary>A gradient for step <paramref name="version"/> arrived from <paramref name="worker"/>.</summary>
    public void RecordArrival(int worker, long version)
    {
        lock (_lock)
        {
            double now = NowMs;
            if (version != _stepStart)
            {
                _stepStart = version;
                _firstArrivalMs = now;
            }
            _lastArrivalMs[worker] = now - _firstArrivalMs;
            _stragglers.Arrived(worker, now - _firstArrivalMs);
        }
    }

    /// <summary>A worker left: it no longer counts in the others' lateness.</summary>
    public void WorkerLeft(int worker)
    {
        lock (_lock)
        {
            _stragglers.Departed(worker);
        }
    }

    /// <summary>How long after its step's first gradient the worker's arrive, smoothed over about <see cref="StragglerWatch.Window"/> steps, in ms.</summary>
    public double MeanLatenessMs(int worker)
    {
        lock (_lock)
        {
            return _stragglers.MeanLatenessMs(worker);
        }
    }

    /// <summary>The mean staleness of the worker's applied gradients (async, ssp: a slow worker's gradients are the stale ones), 0 before any.</summary>
    public double MeanStaleness(int worker)
    {
        lock (_lock)
        {
            var (sum, count) = _workerStaleness.GetValueOrDefault(worker);
            return count == 0 ? 0 : (double)sum / count;
        }
    }

    /// <summary>True when the worker, still in the run, is a straggler now (<see cref="StragglerWatch"/>).</summary>
    public bool IsStraggler(int worker)
    {
        lock (_lock)
        {
            return _stragglers.IsStraggler(worker);
        }
    }

    /// <summary>
    /// An update was applied; <paramref name="staleness"/> per contributing gradient. An update of
    /// one <paramref name="worker"/>'s gradient alone (async, ssp) also counts toward that worker's
    /// mean staleness.
    /// </summary>
    public void RecordApplied(int samples, float loss, ReadOnlySpan<long> staleness, int? worker = null)
    {
        lock (_lock)
        {
            double now = NowMs;
            if (_lastApplyMs >= 0)
            {
                _stepMsSum += now - _lastApplyMs;
                _stepCount++;
                _stepMs.Add(now - _lastApplyMs);
                _stepSeconds?.Record((now - _lastApplyMs) / 1000);
                _stragglers.Stepped(now - _lastApplyMs);
            }
            _lastApplyMs = now;
            foreach (long s in staleness)
            {
                while (_staleness.Count <= s)
                {
                    _staleness.Add(0);
                }
                _staleness[(int)s]++;
                _stalenessVersions?.Record(s);
            }
            _samples += samples;
            LastLoss = loss;
            if (worker is int w && staleness.Length == 1)
            {
                var (sum, count) = _workerStaleness.GetValueOrDefault(w);
                _workerStaleness[w] = (sum + staleness[0], count + 1);
            }
        }
    }

    /// <summary>Adds a test evaluation.</summary>
    public void RecordEpoch(EpochStatus epoch)
    {
        lock (_lock)
        {
            _epochs.Add(epoch);
        }
    }

    /// <summary>The staleness histogram: index = staleness, value = applied gradients.</summary>
    public long[] StalenessHistogram()
    {
        lock (_lock)
        {
            return [.. _staleness];
        }
    }

    /// <summary>The evaluations so far.</summary>
    public EpochStatus[] Epochs()
    {
        lock (_lock)
        {
            return [.. _epochs];
        }
    }

    /// <summary>Milliseconds after the first arrival of the last step that each worker's gradient came in.</summary>
    public double LastArrivalMs(int worker)
    {
        lock (_lock)
        {
            return _lastArrivalMs.TryGetValue(worker, out double ms) ? ms : 0;
        }
    }

    /// <summary>
    /// Mean time between updates once warm, in ms: over the second half of the run's steps
    /// (<see cref="SteadyMean"/>). What throughput benchmarks report.
    /// </summary>
    public double SteadyStepMs
    {
        get
        {
            lock (_lock)
            {
                return SteadyMean(_stepMs);
            }
        }
    }

    /// <summary>
    /// The mean of the second half of <paramref name="stepMs"/> (the middle step counted with it
    /// when the count is odd), 0 for none. The first half is warm-up: each process's JIT compiles
    /// its hot paths once they have run a few dozen times (a method run once a step or once an
    /// epoch gets there late), and with N workers and the server sharing a few cores that costs
    /// more the more processes there are (with 8 emulated workers on 2 cores the workers' JIT
    /// compilers take half the CPU for the first 4 s and stall a step now and then until about
    /// step 370), so a fixed number of warm-up steps would leave it inside the many-worker runs only.
    /// </summary>
    public static double SteadyMean(IReadOnlyList<double> stepMs)
    {
        int skip = (int)WarmUpSteps(stepMs.Count);
        double sum = 0;
        for (int i = skip; i < stepMs.Count; i++)
        {
            sum += stepMs[i];
        }
        return stepMs.Count == 0 ? 0 : sum / (stepMs.Count - skip);
    }

    /// <summary>The steps of a run of <paramref name="steps"/> that <see cref="SteadyMean"/> leaves out as warm-up: the first half.</summary>
    public static long WarmUpSteps(long steps) => steps / 2;

    /// <summary>
    /// Every step's time in order, as means over buckets of <paramref name="bucket"/> consecutive
    /// steps, the smallest bucket that gives at most <paramref name="maxPoints"/> values (the last
    /// bucket may be shorter).
    /// </summary>
    public float[] StepSeries(int maxPoints, out int bucket)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPoints, 1);
        lock (_lock)
        {
            int n = _stepMs.Count;
            bucket = Math.Max(1, (n + maxPoints - 1) / maxPoints);
            var series = new float[(n + bucket - 1) / bucket];
            for (int b = 0; b < series.Length; b++)
            {
                int start = b * bucket, end = Math.Min(n, start + bucket);
                double sum = 0;
                for (int i = start; i < end; i++)
                {
                    sum += _stepMs[i];
                }
                series[b] = (float)(sum / (end - start));
            }
            return series;
        }
    }

    /// <summary>Mean time between updates, in ms.</summary>
    public double MeanStepMs
    {
        get
        {
            lock (_lock)
            {
                return _stepCount == 0 ? 0 : _stepMsSum / _stepCount;
            }
        }
    }
}
