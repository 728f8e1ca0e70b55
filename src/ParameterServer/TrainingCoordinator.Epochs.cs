using System.Globalization;
using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Optim;
using Cluster.Training;
using Cluster.Wire;
using Microsoft.Extensions.Logging;

namespace Cluster.ParameterServer;

/// <summary>What the server does when an epoch ends: evaluate the test set (and the validation split), write the checkpoint and the metrics, and keep the best weights for early stopping.</summary>
public sealed partial class TrainingCoordinator
{
    /// <summary>Evaluates <paramref name="weights"/> (a copy taken at the end of <paramref name="epoch"/>, on a background task chained after the previous epoch's), then records it, writes the metrics and the checkpoint, and ends the run at the target accuracy or when early stopping says so.</summary>
    private void Evaluate(float[] weights, OptimizerState? optimizer, EpochStatus epoch, bool lastEpoch)
    {
        bool endsRun = lastEpoch;
        if (StoppedEarly)
        {
            // An epoch trained while the one before was evaluated: early stopping already ended the run there.
            return;
        }
        _evaluating.Wait();
        try
        {
            weights.CopyTo(_evaluationModel.Parameters, 0);
            RunningStatistics.Recalibrate(_evaluationModel, _train, Options.Training.Seed + (ulong)epoch.Epoch);
            var result = Trainer.Evaluate(_evaluationModel, _test);
            epoch.TestLoss = result.Loss;
            epoch.TestAccuracy = result.Accuracy;
            int? sinceBest = null;
            if (_validation is not null)
            {
                var check = Trainer.Evaluate(_evaluationModel, _validation);
                epoch.ValidationAccuracy = check.Accuracy;
                epoch.ValidationLoss = check.Loss;
                if (_best is not null)
                {
                    sinceBest = _best.Offer(epoch.Epoch, check.Accuracy);
                }
            }
            Recorder.RecordEpoch(epoch);
            if (Options.Training.Metrics is string metrics)
            {
                // NOTE: every evaluated epoch, not only at the end: a server that dies leaves the
                // epochs it finished, and one resumed from its checkpoint goes on after them.
                WriteMetrics(metrics);
            }
            _logger.LogInformation("epoch {Epoch}: train loss {TrainLoss:F4}, test loss {TestLoss:F4}, test accuracy {Accuracy:P2}, {Rate:N0} images/s",
                epoch.Epoch, epoch.TrainLoss, epoch.TestLoss, epoch.TestAccuracy, epoch.ImagesPerSec);
            if (Options.TargetAccuracy is double target && result.Accuracy >= target && TimeToAccuracy is null)
            {
                TimeToAccuracy = Recorder.Seconds;
                _logger.LogInformation("target accuracy {Target:P1} reached after {Seconds:F1} s", target, TimeToAccuracy);
                Rule.Finish();
                _ = CompleteAsync();
                endsRun = true;
            }
            if (sinceBest is int stale && Options.Training.Patience is int patience && stale >= patience && !endsRun)
            {
                StoppedEarly = true;
                _logger.LogInformation("early stopping: no better validation accuracy for {Patience} epoch(s); keeping the weights of epoch {Best} ({Accuracy:P2} on validation)", patience, _best!.Epoch, _best.Accuracy);
                Rule.Finish();
                _ = CompleteAsync();
                endsRun = true;
            }
            // NOTE: every evaluated epoch replaces the checkpoint (atomically), so a server that
            // dies loses at most the epochs since: --init starts a run again from it.
            if (Options.Training.Save is string path && epoch.Epoch > _savedEpoch)
            {
                SaveCheckpoint(path, epoch, optimizer);
            }
        }
        finally
        {
            _evaluating.Release();
        }
    }

    /// <summary>
    /// Writes the weights just evaluated (with batch norm's statistics recomputed for them, as
    /// evaluated) and the optimizer's state at the same epoch boundary to <paramref name="path"/>,
    /// with the run's figures in the metadata; a failure is
    /// logged and kept in <see cref="CheckpointError"/> (the run fails with it unless a later
    /// epoch's checkpoint is written).
    /// </summary>
    private void SaveCheckpoint(string path, EpochStatus epoch, OptimizerState? optimizer)
    {
        var metadata = NormalizationMetadata.ForRun(epoch.Epoch, epoch.TestAccuracy, Options.Training.Seed, _normalization);
        metadata["cluster.mode"] = Rule.Name;
        metadata["cluster.workers"] = Options.Workers.ToString(CultureInfo.InvariantCulture);
        try
        {
            // With early stopping, the best weights so far go with a checkpoint to resume from.
            Checkpoint.Save(path, _evaluationModel, metadata, optimizer, optimizer is null ? null : _best?.Capture());
            _savedEpoch = epoch.Epoch;
            CheckpointError = null;
            CheckpointSaved = string.Create(CultureInfo.InvariantCulture, $"{path} (epoch {epoch.Epoch}, test accuracy {epoch.TestAccuracy:P2})");
            _logger.LogInformation("checkpoint of epoch {Epoch} ({Accuracy:P2}) written to {Path}", epoch.Epoch, epoch.TestAccuracy, path);
        }
        catch (Exception e) when (e is CheckpointException or IOException or UnauthorizedAccessException)
        {
            CheckpointError = e.Message;
            _logger.LogError("checkpoint {Path} not written: {Message}", path, e.Message);
        }
    }

    /// <summary>
    /// Rewrites the <c>--metrics</c> file (atomically) from the status now: one line per epoch
    /// evaluated, after the lines of the epochs a resumed run's checkpoint had done.
    /// </summary>
    public void WriteMetrics(string path)
    {
        try
        {
            MetricsFile.Write(path, StatusBuilder.Build(this), Options, TimeToAccuracy, StartEpoch);
        }
        catch (IOException e)
        {
            _logger.LogError("metrics file {Path} not written: {Message}", path, e.Message);
        }
    }

    /// <summary>The images held out of training for validation (<see cref="TrainingOptions.EffectiveValidationFraction"/>), or null.</summary>
    internal Dataset? Validation => _validation;

    /// <summary>With <see cref="TrainingOptions.Patience"/>: the epoch of the best validation accuracy so far, whose weights the run keeps.</summary>
    public int? BestEpoch => _best is { Epoch: > 0 } best ? best.Epoch : null;

    /// <summary>True when early stopping ended the run.</summary>
    public bool StoppedEarly { get; private set; }

    /// <summary>
    /// Early stopping keeps the best model, not the last, as <c>train</c> does: the checkpoint is
    /// replaced by the best epoch's weights, without an optimizer state (the run is over).
    /// </summary>
    private void KeepBest()
    {
        if (Options.Training.Save is not string path || _best!.Epoch == _savedEpoch)
        {
            return;
        }
        _evaluating.Wait();
        try
        {
            _best.Restore();
            // A resumed run's best epoch may be one before this server started: its accuracy is measured again (the same weights, the same figure).
            var kept = Recorder.Epochs().FirstOrDefault(e => e.Epoch == _best.Epoch)
                ?? new EpochStatus { Epoch = _best.Epoch, TestAccuracy = Trainer.Evaluate(_evaluationModel, _test).Accuracy };
            SaveCheckpoint(path, kept, optimizer: null);
        }
        finally
        {
            _evaluating.Release();
        }
    }

    /// <summary>The checkpoint last written (<see cref="TrainingOptions.Save"/>, after each evaluated epoch), with its epoch and accuracy.</summary>
    public string? CheckpointSaved { get; private set; }

    /// <summary>Why the checkpoint asked for could not be written, if it could not.</summary>
    public string? CheckpointError { get; private set; }
}
