using System.Diagnostics.Metrics;

namespace Cluster.ParameterServer;

/// <summary>
/// The run as metrics (System.Diagnostics.Metrics, meter <see cref="MeterName"/>), which
/// OpenTelemetry serves to Prometheus at <c>/metrics</c> when the server runs with
/// <c>--prometheus-port</c>: the global step, samples, refused and late pushes, the test accuracy,
/// and per worker its pushes, images/s, time split and how late its last gradient came, so that a
/// straggler shows on a dashboard as it does in the live view. Read from what the run records
/// already when a scrape asks for them, so that nothing is counted twice and training pays nothing
/// between scrapes; step times and staleness are histograms recorded by <see cref="RunRecorder"/>.
/// </summary>
public static class ServerMetrics
{
    /// <summary>The meter's name, for <c>AddMeter</c>.</summary>
    public const string MeterName = "Cluster.ParameterServer";

    /// <summary>Registers the observable instruments of <paramref name="run"/> on <paramref name="meter"/>.</summary>
    public static void Observe(Meter meter, TrainingCoordinator run)
    {
        meter.CreateObservableCounter("cluster.updates", () => run.StartStep + run.Store.Version, "{update}",
            "updates applied to the weights since the run began (the global step; a resumed run counts its checkpoint's)");
        meter.CreateObservableCounter("cluster.samples", () => run.Recorder.Samples, "{sample}", "training samples whose gradients this server applied");
        meter.CreateObservableCounter("cluster.pushes.rejected", () => run.Recorder.Rejected, "{push}",
            "pushes refused: wrong length, chunk out of order, NaN or Inf, unknown worker, version from the future");
        meter.CreateObservableCounter("cluster.pushes.dropped_late", () => run.Recorder.DroppedLate, "{push}", "sync gradients dropped because the step already had its N (backup workers)");
        meter.CreateObservableCounter("cluster.calls.unauthenticated", () => run.Recorder.Unauthenticated, "{call}", "calls refused for a missing or wrong cluster token");
        meter.CreateObservableGauge("cluster.train.loss", () => (double)run.Recorder.LastLoss, description: "training loss of the last update's batches");
        meter.CreateObservableGauge("cluster.epochs", () => run.StartEpoch + run.Recorder.Epochs().Length, "{epoch}", "epochs evaluated since the run began");
        meter.CreateObservableGauge("cluster.test.accuracy", () => LastEpoch(run, e => e.TestAccuracy), "1", "test accuracy after the last evaluated epoch");
        meter.CreateObservableGauge("cluster.test.loss", () => LastEpoch(run, e => e.TestLoss), description: "test loss after the last evaluated epoch");
        meter.CreateObservableGauge("cluster.workers.active", () => run.Membership.ActiveCount, "{worker}", "workers taking part now");
        meter.CreateObservableCounter("cluster.worker.pushes", () => PerWorker<long>(run, (w, tags) => [new Measurement<long>(w.Pushes, tags)]), "{push}", "gradients each worker pushed");
        meter.CreateObservableGauge("cluster.worker.images_per_second", () => PerWorker<double>(run, (w, tags) =>
        {
            double seconds = w.Time.TotalMs / 1000;
            return seconds > 0 ? [new Measurement<double>(w.Time.Samples / seconds, tags)] : [];
        }), "{image}/s", "each worker's training rate over its whole time");
        meter.CreateObservableCounter("cluster.worker.time", () => PerWorker<double>(run, (w, tags) =>
        [
            new Measurement<double>(w.Time.ComputeMs / 1000, [.. tags, new("part", "compute")]),
            new Measurement<double>(w.Time.PushMs / 1000, [.. tags, new("part", "push")]),
            new Measurement<double>(w.Time.PullMs / 1000, [.. tags, new("part", "pull")]),
            new Measurement<double>(w.Time.WaitMs / 1000, [.. tags, new("part", "wait")]),
        ]), "s", "each worker's time split as it last reported it: compute, push, pull and waiting");
        meter.CreateObservableGauge("cluster.worker.last_arrival", () => PerWorker<double>(run, (w, tags) => [new Measurement<double>(run.Recorder.LastArrivalMs(w.Id) / 1000, tags)]), "s",
            "how long after its step's first gradient each worker's last one arrived (sync): a straggler's stands out");
        meter.CreateObservableGauge("cluster.worker.lateness", () => PerWorker<double>(run, (w, tags) => [new Measurement<double>(run.Recorder.MeanLatenessMs(w.Id) / 1000, tags)]), "s",
            "how long after each step's first gradient each worker's arrive, smoothed over about 32 steps (sync)");
        meter.CreateObservableGauge("cluster.worker.staleness", () => PerWorker<double>(run, (w, tags) => [new Measurement<double>(run.Recorder.MeanStaleness(w.Id), tags)]), "{version}",
            "the mean staleness of each worker's applied gradients (async, ssp): a slow worker's are the stale ones");
        meter.CreateObservableGauge("cluster.worker.straggler", () => PerWorker<int>(run, (w, tags) => [new Measurement<int>(run.IsStraggler(w.Id) ? 1 : 0, tags)]), description:
            "1 while the other workers keep waiting for this one (sync): its lateness is at least a fifth of a step and three times theirs");
    }

    private static IEnumerable<Measurement<double>> LastEpoch(TrainingCoordinator run, Func<Wire.EpochStatus, double> value)
    {
        var epochs = run.Recorder.Epochs();
        return epochs.Length == 0 ? [] : [new Measurement<double>(value(epochs.MaxBy(e => e.Epoch)!))];
    }

    /// <summary>The measurements of every worker that has joined, tagged with its name and rank (a replacement has a rank of its own).</summary>
    private static IEnumerable<Measurement<T>> PerWorker<T>(TrainingCoordinator run, Func<WorkerRecord, KeyValuePair<string, object?>[], IEnumerable<Measurement<T>>> measure)
        where T : struct =>
        run.Membership.Snapshot().SelectMany(w => measure(w, [new("worker", w.Name), new("rank", w.Id)]));
}
