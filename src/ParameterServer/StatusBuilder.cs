using Cluster.Wire;

namespace Cluster.ParameterServer;

/// <summary>Builds the <c>status</c> reply from what the run recorded.</summary>
public static class StatusBuilder
{
    /// <summary>Most values of the step-time series a finished run's status carries (8 KB).</summary>
    public const int MaxStepSeriesPoints = 2000;

    /// <summary>The status of <paramref name="run"/> now.</summary>
    public static StatusReply Build(TrainingCoordinator run)
    {
        var reply = new StatusReply
        {
            Mode = run.Rule.Name,
            Version = run.Store.Version,
            TotalSamples = run.TotalSamples,
            Finished = run.Finished.IsCompleted,
            RejectedPushes = run.Recorder.Rejected,
            UnauthenticatedCalls = run.Recorder.Unauthenticated,
            DroppedLate = run.Recorder.DroppedLate,
            MeanStepMs = run.Recorder.MeanStepMs,
            SteadyStepMs = run.Recorder.SteadyStepMs,
            LastLoss = run.Recorder.LastLoss,
            Seconds = run.Recorder.Seconds,
            Samples = run.Recorder.Samples,
            ImagesPerSec = run.Recorder.Samples / Math.Max(1e-9, run.Recorder.Seconds),
            TimeToAccuracySeconds = run.TimeToAccuracy ?? 0,
            TotalEpochs = run.Options.Training.Epochs,
            StartEpoch = run.StartEpoch,
            StartStep = run.StartStep,
            BestEpoch = run.BestEpoch ?? 0,
            StoppedEarly = run.StoppedEarly,
        };
        if (reply.Finished)
        {
            reply.StepSeriesMs.AddRange(run.Recorder.StepSeries(MaxStepSeriesPoints, out int bucket));
            reply.StepSeriesBucket = bucket;
        }
        reply.StalenessHistogram.AddRange(run.Recorder.StalenessHistogram());
        reply.Epochs.AddRange(run.Recorder.Epochs());
        foreach (var w in run.Membership.Snapshot())
        {
            double computeSeconds = w.Time.TotalMs / 1000;
            reply.Workers.Add(new WorkerStatus
            {
                WorkerId = w.Id,
                Name = w.Name,
                Active = w.Active,
                Pushes = w.Pushes,
                LastArrivalMs = run.Recorder.LastArrivalMs(w.Id),
                MeanLatenessMs = run.Recorder.MeanLatenessMs(w.Id),
                Straggler = run.IsStraggler(w.Id),
                MeanStaleness = run.Recorder.MeanStaleness(w.Id),
                Time = w.Time,
                SteadyTime = w.SteadyTime,
                ImagesPerSec = computeSeconds > 0 ? w.Time.Samples / computeSeconds : 0,
            });
        }
        return reply;
    }
}
