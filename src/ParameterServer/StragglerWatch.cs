namespace Cluster.ParameterServer;

/// <summary>
/// Finds stragglers in a synchronous run: workers whose gradients keep arriving well after the
/// step's first, so that every other worker waits for them. Each worker's lateness (ms after the
/// step's first complete gradient) and the step time are smoothed over about
/// <see cref="Window"/> steps; a worker is a straggler once its smoothed lateness is at least
/// <see cref="StepFraction"/> of a step and <see cref="Outlier"/> times the others' — one slow
/// machine, not the ordinary jitter of who comes last. Not thread-safe: <see cref="RunRecorder"/>
/// calls it under its lock.
/// </summary>
public sealed class StragglerWatch
{
    /// <summary>Steps the averages span, about (exponential smoothing with weight 1/Window).</summary>
    public const int Window = 32;

    /// <summary>The share of a step a straggler's lateness must reach.</summary>
    public const double StepFraction = 0.2;

    /// <summary>How many times the other workers' mean lateness a straggler's must be.</summary>
    public const double Outlier = 3;

    /// <summary>Lateness below this, in ms, is never a straggler's (timer and scheduling noise).</summary>
    public const double FloorMs = 2;

    private readonly Dictionary<int, (double MeanMs, int Count)> _lateness = [];
    private readonly HashSet<int> _departed = [];
    private double _stepMs;
    private int _steps;

    /// <summary>Worker <paramref name="worker"/>'s gradient for a step came <paramref name="latenessMs"/> after the step's first.</summary>
    public void Arrived(int worker, double latenessMs)
    {
        var (mean, count) = _lateness.GetValueOrDefault(worker);
        _lateness[worker] = (Smooth(mean, latenessMs, count), count + 1);
    }

    /// <summary>A step took <paramref name="stepMs"/> from the update before.</summary>
    public void Stepped(double stepMs)
    {
        _stepMs = Smooth(_stepMs, stepMs, _steps);
        _steps++;
    }

    /// <summary>A worker left: it is no straggler and no longer counts among the others (its lateness is kept for the record).</summary>
    public void Departed(int worker) => _departed.Add(worker);

    /// <summary>The worker's smoothed lateness in ms, 0 before its first gradient.</summary>
    public double MeanLatenessMs(int worker) => _lateness.GetValueOrDefault(worker).MeanMs;

    /// <summary>True when <paramref name="worker"/> holds the others back (see the class summary).</summary>
    public bool IsStraggler(int worker)
    {
        var present = _lateness.Where(w => !_departed.Contains(w.Key)).ToList();
        if (present.Count < 2 || _steps < Window || _departed.Contains(worker) || !_lateness.TryGetValue(worker, out var own) || own.Count < Window)
        {
            return false;
        }
        double others = present.Where(w => w.Key != worker).Average(w => w.Value.MeanMs);
        return own.MeanMs >= Math.Max(FloorMs, StepFraction * _stepMs) && own.MeanMs >= Outlier * others;
    }

    /// <summary>The smoothed step time in ms.</summary>
    public double MeanStepMs => _stepMs;

    // NOTE: a plain mean over the first Window values, so that the start is not dragged toward 0.
    private static double Smooth(double mean, double value, int count) => mean + (value - mean) / Math.Min(count + 1, Window);
}
