using System.Diagnostics;
using System.Text.Json;
using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Tensors;

namespace Cluster.Training;

/// <summary>Receives a training run's progress (a terminal view, a log, a test).</summary>
public interface ITrainingObserver
{
    /// <summary>An epoch is starting with <paramref name="batches"/> steps.</summary>
    void EpochStarted(int epoch, int batches);

    /// <summary>A step finished; <paramref name="imagesPerSec"/> is the epoch's rate so far.</summary>
    void BatchDone(int epoch, int batch, float loss, double imagesPerSec);

    /// <summary>The epoch's training is over and the test set is being evaluated.</summary>
    void Evaluating(int epoch);

    /// <summary>An epoch finished and was evaluated.</summary>
    void EpochDone(EpochResult result);
}

/// <summary>
/// Single-process training: the model trains on the training split in seeded mini-batches,
/// is evaluated on the test split after every epoch, and the per-epoch results go to the observer
/// and, as JSON lines, to the metrics file.
/// </summary>
public sealed class TrainingRun
{
    private readonly TrainingOptions _options;
    private readonly FashionMnist _data;
    private readonly Augmentation? _augmentation;
    private readonly ResumePoint? _resumed;

    /// <summary>Prepares a run; <paramref name="options"/> must have been validated.</summary>
    public TrainingRun(TrainingOptions options, ModelSpec spec, FashionMnist data)
    {
        spec.RequireFits(data);
        _augmentation = options.ParseAugmentation(data);
        _options = options;
        _data = data;
        Model = options.InitialModel(spec);
        _resumed = options.ResumePointFor(Model);
    }

    /// <summary>With <see cref="TrainingOptions.Resume"/>, the epochs its checkpoint had done: the run starts with the next.</summary>
    public int? ResumedAfterEpoch => _resumed?.EpochsDone;

    /// <summary>The model being trained.</summary>
    public Sequential Model { get; }

    /// <summary>True when early stopping ended the run before the last epoch.</summary>
    public bool StoppedEarly { get; private set; }

    /// <summary>With early stopping, the epoch whose weights the model holds at the end (the best on validation).</summary>
    public int? BestEpoch { get; private set; }

    /// <summary>The epoch whose weights <see cref="TrainingOptions.Save"/> holds, once one is written.</summary>
    public int? SavedEpoch { get; private set; }

    /// <summary>Seconds of training and evaluation until the target accuracy was reached, if it was.</summary>
    public double? TimeToAccuracy { get; private set; }

    /// <summary>Runs every epoch; returns the results in order. Stops early, between steps, when <paramref name="cancel"/> fires.</summary>
    public IReadOnlyList<EpochResult> Run(ITrainingObserver observer, CancellationToken cancel = default)
    {
        using var team = new ThreadTeam(_options.Threads);
        Model.Team = team;
        var optimizer = Optimizer.Create(_options.OptimizerOptions, Model.NamedParameters);
        if (_resumed is not null)
        {
            optimizer.RestoreState(_resumed.Optimizer);
        }
        var trainer = new Trainer(Model, optimizer, _options.Batch) { ClipNorm = _options.ClipNorm };
        var schedule = _options.ParseSchedule();
        float baseRate = optimizer.LearningRate;
        var train = _data.Train;
        Dataset? validation = null;
        if (_options.EffectiveValidationFraction is double fraction)
        {
            (train, validation) = train.SplitValidation(fraction, _options.Seed);
        }
        var batches = new BatchIterator(train, _options.Batch, _options.Seed)
        {
            Augmentation = _augmentation,
        };
        var best = new BestSnapshot(Model);
        if (_resumed?.Best is { } bestSoFar)
        {
            best.Adopt(bestSoFar);
        }
        var results = new List<EpochResult>();
        // A resumed run's file goes on from the epochs its checkpoint had done.
        var earlier = MetricsHistory.EarlierEpochs(_options.Metrics, _resumed?.EpochsDone ?? 0);
        using var metrics = _options.Metrics is null ? null : new StreamWriter(_options.Metrics, append: false);
        foreach (string line in earlier)
        {
            metrics!.WriteLine(line);
        }
        for (int epoch = (_resumed?.EpochsDone ?? 0) + 1; epoch <= _options.Epochs && !cancel.IsCancellationRequested; epoch++)
        {
            var clock = Stopwatch.StartNew();
            optimizer.LearningRate = schedule.RateAt(epoch - 1, baseRate);
            batches.StartEpoch(epoch);
            Model.SeedEpoch(_options.Seed, epoch);
            observer.EpochStarted(epoch, batches.BatchesPerEpoch);
            double lossSum = 0;
            int steps = 0, images = 0;
            for (int b = 0; b < batches.BatchesPerEpoch && !cancel.IsCancellationRequested; b++)
            {
                trainer.Images.SetBatchSize(_options.Batch);
                int count = batches.Next(trainer.Images.Span, trainer.Labels);
                float loss = trainer.Step(count);
                lossSum += loss;
                steps++;
                images += count;
                observer.BatchDone(epoch, b + 1, loss, images / clock.Elapsed.TotalSeconds);
            }
            if (cancel.IsCancellationRequested)
            {
                // A part-trained epoch is no point to resume from: the checkpoint keeps the last whole one.
                break;
            }
            double trainSeconds = clock.Elapsed.TotalSeconds;
            observer.Evaluating(epoch);
            var test = Trainer.Evaluate(Model, _data.Test);
            var check = validation is null ? null : Trainer.Evaluate(Model, validation);
            var result = new EpochResult
            {
                Epoch = epoch,
                TrainLoss = lossSum / Math.Max(1, steps),
                TestLoss = test.Loss,
                TestAccuracy = test.Accuracy,
                ImagesPerSec = images / trainSeconds,
                Seconds = clock.Elapsed.TotalSeconds,
                ValidationAccuracy = check?.Accuracy,
                ValidationLoss = check?.Loss,
            };
            results.Add(result);
            // NOTE: offered before the checkpoint is written, which carries the best weights so far for --resume.
            int? sinceBest = check is null ? null : best.Offer(epoch, check.Accuracy);
            if (metrics is not null)
            {
                metrics.WriteLine(JsonSerializer.Serialize(result));
                metrics.Flush();
            }
            if (_options.Save is string path)
            {
                // NOTE: every epoch, with the optimizer's state: a run stopped or killed goes on from
                // here with --resume and ends with the weights it would have had.
                Checkpoint.Save(path, Model, NormalizationMetadata.ForRun(epoch, test.Accuracy, _options.Seed, _data.Normalization), optimizer.CaptureState(),
                    _options.Patience is null ? null : best.Capture());
                SavedEpoch = epoch;
            }
            observer.EpochDone(result);
            if (_options.TargetAccuracy is double target && result.TestAccuracy >= target)
            {
                TimeToAccuracy = results.Sum(r => r.Seconds);
                break;
            }
            if (sinceBest is int stale && _options.Patience is int patience && stale >= patience)
            {
                StoppedEarly = true;
                break;
            }
        }
        // NOTE: not when stopped: then the checkpoint stays the last epoch's, to resume from (it holds the best weights too).
        if (_options.Patience is not null && best.Epoch > 0 && !cancel.IsCancellationRequested)
        {
            // Early stopping keeps the best model, not the last.
            best.Restore();
            BestEpoch = best.Epoch;
            if (_options.Save is string path && best.Epoch != SavedEpoch)
            {
                // The weights kept, without an optimizer state: this run is over, not to be resumed.
                // A resumed run's best epoch may be one before it started: its accuracy is measured again (the same weights, the same figure).
                double accuracy = results.FirstOrDefault(r => r.Epoch == best.Epoch)?.TestAccuracy ?? Trainer.Evaluate(Model, _data.Test).Accuracy;
                Checkpoint.Save(path, Model, NormalizationMetadata.ForRun(best.Epoch, accuracy, _options.Seed, _data.Normalization));
                SavedEpoch = best.Epoch;
            }
        }
        return results;
    }
}
