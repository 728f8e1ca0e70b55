using System.Diagnostics;
using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.ParameterServer.Rules;
using Cluster.Tensors;
using Cluster.Training;
using Cluster.Wire;
using Microsoft.Extensions.Logging;

namespace Cluster.ParameterServer;

/// <summary>
/// The server's side of a run: the weights, the rule, membership and the record, plus the epoch
/// clock. An epoch is over when applied updates have covered as many samples as the training set
/// holds; the test set is then evaluated on a copy of the weights in the background, so training
/// does not stop for it (batch norm's running statistics are first recomputed for those weights:
/// the workers keep theirs). The learning-rate schedule moves on at each epoch boundary. The run
/// ends after the last epoch or when the target accuracy is reached. A resumed run starts with the
/// weights and optimizer state of its checkpoint, at the epoch after the one it holds.
/// </summary>
public sealed partial class TrainingCoordinator : IDisposable
{
    private readonly ILogger _logger;
    private readonly Sequential _evaluationModel;
    private readonly ThreadTeam _evaluationTeam;
    private readonly Dataset _test;
    private readonly Dataset _train;
    private readonly Dataset? _validation;
    private readonly BestSnapshot? _best;
    private readonly Normalization _normalization;
    private readonly LearningRateSchedule _schedule;
    private readonly float _baseRate;
    private readonly long _samplesPerEpoch;
    private readonly SemaphoreSlim _evaluating = new(1, 1);
    private readonly List<Task> _evaluations = [];
    private readonly Stopwatch _epochClock = Stopwatch.StartNew();
    private readonly TimeSplit _workerTimeAtEpochStart = new();
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _epochsDone;
    private int _savedEpoch;
    private int _keptBest;
    private readonly HashSet<int> _stragglers = [];
    private volatile bool _stopped;
    private double _epochLossSum;
    private long _epochSamples;

    /// <summary>The fingerprint of the data this server was given (<see cref="FashionMnist.Fingerprint"/>), which every worker's must match.</summary>
    public string DataFingerprint { get; }

    /// <summary>Where the server's data came from, for the workers' messages.</summary>
    public string DataSource { get; }

    /// <summary>Builds the run from validated options and the data every worker will also read.</summary>
    /// <remarks>With a <paramref name="meter"/>, the run is also published as metrics (<see cref="ServerMetrics"/>).</remarks>
    public TrainingCoordinator(ServerOptions options, FashionMnist data, ILogger logger, System.Diagnostics.Metrics.Meter? meter = null)
    {
        Options = options;
        _logger = logger;
        var spec = ModelPresets.Resolve(options.Training.Model);
        Spec = spec;
        var model = options.Training.InitialModel(spec);
        Layout = model.NamedParameters;
        var optimizer = Optimizer.Create(options.Training.OptimizerOptions, model.NamedParameters);
        var resumed = options.Training.ResumePointFor(model);
        if (resumed is not null)
        {
            optimizer.RestoreState(resumed.Optimizer);
            StartEpoch = resumed.EpochsDone;
            StartStep = resumed.Optimizer.Steps;
        }
        Store = new ParameterStore(model.Parameters, optimizer, ChunkLayout.ForTensors(model.NamedParameters, model.ParameterCount, options.ChunkFloats))
        {
            ClipNorm = options.Training.ClipNorm,
        };
        options.CheckEmulatedProfile(Store.Chunks);
        _schedule = options.Training.ParseSchedule();
        // Workers build their own augmentation from the settings; a bad one is refused here, before any joins.
        _ = options.Training.ParseAugmentation(data);
        _baseRate = Store.Optimizer.LearningRate;
        _epochsDone = StartEpoch;
        Store.Optimizer.LearningRate = _schedule.RateAt(StartEpoch, _baseRate);
        Pool = new GradientPool(Store.Size);
        Recorder = new RunRecorder(meter);
        Membership = new Membership(options.ExpectedWorkers);
        Rule = ConsistencyRule.Create(options.Mode, options.Workers, options.BackupWorkers, Store, Pool, Recorder);
        Rule.Applied += OnApplied;
        _evaluationModel = new Sequential(spec);
        _evaluationTeam = new ThreadTeam(options.EvaluationThreads);
        _evaluationModel.Team = _evaluationTeam;
        _test = data.Test;
        _train = data.Train;
        if (options.Training.EffectiveValidationFraction is double fraction)
        {
            // The same seeded split as train's; the workers learn the fraction at join and shard the rest.
            (_train, _validation) = data.Train.SplitValidation(fraction, options.Training.Seed);
        }
        _best = options.Training.Patience is null ? null : new BestSnapshot(_evaluationModel);
        if (resumed?.Best is { } kept)
        {
            _best!.Adopt(kept);
        }
        _normalization = data.Normalization;
        DataFingerprint = data.Fingerprint;
        DataSource = data.Source;
        TrainCount = _train.Count;
        _samplesPerEpoch = _train.Count;
        if (meter is not null)
        {
            ServerMetrics.Observe(meter, this);
        }
    }

    /// <summary>
    /// The push lanes workers use: <see cref="ServerOptions.PushLanes"/> in sync mode applied chunk
    /// by chunk, else 1 — a worker whose next push could start before every lane of this one has
    /// arrived (async, ssp, backup workers) sends on one stream, in order.
    /// </summary>
    public int EffectivePushLanes => Rule.TakesChunks ? Options.PushLanes : 1;

    /// <summary>The options the server started with.</summary>
    public ServerOptions Options { get; }

    /// <summary>The model being trained.</summary>
    public ModelSpec Spec { get; }

    /// <summary>Where each parameter tensor lives in the flat vector.</summary>
    public IReadOnlyList<NamedParameter> Layout { get; }

    /// <summary>The weights.</summary>
    public ParameterStore Store { get; }

    /// <summary>Gradient buffers.</summary>
    public GradientPool Pool { get; }

    /// <summary>What the run records.</summary>
    public RunRecorder Recorder { get; }

    /// <summary>The workers' time split as their pushes report it, cut at each epoch's end.</summary>
    public TimeSplitLedger WorkerTime { get; } = new();

    /// <summary>Who is in the cluster.</summary>
    public Membership Membership { get; }

    /// <summary>The consistency rule.</summary>
    public ConsistencyRule Rule { get; }

    /// <summary>Samples in the training set.</summary>
    public int TrainCount { get; }

    /// <summary>Epochs done before this run started: those of the checkpoint it resumed, else 0.</summary>
    public int StartEpoch { get; }

    /// <summary>Updates applied before this server started: the resumed checkpoint's optimizer steps, 0 for a new run. The store's version counts from 0 again.</summary>
    public long StartStep { get; }

    /// <summary>Samples this run applies before it ends: the epochs from <see cref="StartEpoch"/> to the last.</summary>
    public long TotalSamples => _samplesPerEpoch * (Options.Training.Epochs - StartEpoch);

    /// <summary>Completes when training is over and every evaluation has finished.</summary>
    public Task Finished => _finished.Task;

    /// <summary>Set when a status request was answered after the run finished (a launcher has the final figures).</summary>
    public bool FinalStatusServed { get; set; }

    /// <summary>Seconds from the start until the target accuracy was first reached, if it was.</summary>
    public double? TimeToAccuracy { get; private set; }

    private void OnApplied(AppliedUpdate update)
    {
        // NOTE: runs under the rule's lock: only cheap bookkeeping and a weight copy here.
        _epochLossSum += (double)update.Loss * update.Samples;
        _epochSamples += update.Samples;
        long samples = Recorder.Samples;
        if (samples >= (_epochsDone - StartEpoch + 1) * _samplesPerEpoch)
        {
            _epochsDone++;
            Store.Optimizer.LearningRate = _schedule.RateAt(_epochsDone, _baseRate);
            var epoch = new EpochStatus
            {
                Epoch = _epochsDone,
                TrainLoss = _epochLossSum / Math.Max(1, _epochSamples),
                Seconds = _epochClock.Elapsed.TotalSeconds,
                ImagesPerSec = _epochSamples / Math.Max(1e-9, _epochClock.Elapsed.TotalSeconds),
                Time = WorkerTime.Snapshot().Minus(_workerTimeAtEpochStart),
            };
            _workerTimeAtEpochStart.Add(epoch.Time);
            _epochClock.Restart();
            _epochLossSum = 0;
            _epochSamples = 0;
            bool last = samples >= TotalSamples;
            if (last || Options.EvaluateEachEpoch)
            {
                // NOTE: the copy only for an evaluation: 0.9 MB for lenet each epoch, allocated and
                // copied under the rule's lock, would add to the step every worker waits on.
                var weights = new float[Store.Size];
                Store.CopyWeights(weights);
                // The optimizer's state at the same boundary, for a checkpoint to resume from.
                var optimizer = Options.Training.Save is null ? null : Store.Optimizer.CaptureState();
                lock (_evaluations)
                {
                    // NOTE: one after the other, in epoch order: early stopping counts epochs since the best.
                    var previous = _evaluations.Count == 0 ? Task.CompletedTask : _evaluations[^1];
                    _evaluations.Add(previous.ContinueWith(_ => Evaluate(weights, optimizer, epoch, last), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default));
                }
            }
            if (last)
            {
                Rule.Finish();
                _ = CompleteAsync();
            }
        }
    }

    private async Task CompleteAsync()
    {
        Task[] pending;
        lock (_evaluations)
        {
            pending = [.. _evaluations];
        }
        await Task.WhenAll(pending).ConfigureAwait(false);
        // NOTE: not when stopped: the checkpoint then stays the last epoch's, to resume from (it holds the best weights too).
        if (_best is { Epoch: > 0 } && !_stopped && Interlocked.Exchange(ref _keptBest, 1) == 0)
        {
            KeepBest();
        }
        _finished.TrySetResult();
    }

    /// <summary>
    /// Marks as gone every active worker not heard from (pull, push or heartbeat) for
    /// <paramref name="silenceMs"/>, so that a dead worker never hangs a synchronous step.
    /// Returns the ranks dropped.
    /// </summary>
    public IReadOnlyList<int> DropSilentWorkers(double silenceMs)
    {
        var dropped = new List<int>();
        double now = Recorder.NowMs;
        foreach (var worker in Membership.Snapshot())
        {
            if (worker.Active && now - worker.LastSeenMs > silenceMs)
            {
                worker.Active = false;
                Rule.WorkerLeft(worker.Id);
                dropped.Add(worker.Id);
                _logger.LogWarning("worker {Id} ({Name}) silent for {Seconds:F0} s: treated as gone; the run goes on without it", worker.Id, worker.Name, (now - worker.LastSeenMs) / 1000);
            }
        }
        if (dropped.Count > 0)
        {
            EndIfEveryWorkerHasGone();
        }
        return dropped;
    }

    /// <summary>Ends the run when every worker has gone (left, or dropped for silence): nobody is left to train it.</summary>
    public void EndIfEveryWorkerHasGone()
    {
        if (Membership.ActiveCount == 0 && Membership.AllJoined.IsCompleted && !Rule.Finished)
        {
            _logger.LogWarning("every worker has gone: ending the run");
            Stop();
        }
    }

    /// <summary>
    /// Logs a worker once when it becomes a straggler (the others keep waiting for its gradients)
    /// and once when it no longer is, with how late it comes and what would help. A worker that
    /// leaves keeps the mark it had, for the run's summary.
    /// </summary>
    public void ReportStragglers()
    {
        foreach (var worker in Membership.Snapshot().Where(w => w.Active))
        {
            bool straggles = Recorder.IsStraggler(worker.Id);
            bool added, removed;
            lock (_stragglers)
            {
                added = straggles && _stragglers.Add(worker.Id);
                removed = !straggles && _stragglers.Remove(worker.Id);
            }
            if (added)
            {
                double late = Recorder.MeanLatenessMs(worker.Id);
                _logger.LogWarning("worker {Id} ({Name}) is a straggler: its gradients arrive {Late:F1} ms after each step's first, on average over the last ~{Window} steps, and the others wait for it{Hint}",
                    worker.Id, worker.Name, late, StragglerWatch.Window,
                    Options.BackupWorkers == 0 && Rule.Name == "sync" ? "; with --backup-workers 1 a step goes on without the slowest gradient" : "");
            }
            else if (removed)
            {
                _logger.LogInformation("worker {Id} ({Name}) no longer straggles ({Late:F1} ms after each step's first, on average)", worker.Id, worker.Name, Recorder.MeanLatenessMs(worker.Id));
            }
        }
    }

    /// <summary>True when the worker straggles (as last checked by <see cref="ReportStragglers"/>, every second), or did when it left.</summary>
    public bool IsStraggler(int worker)
    {
        lock (_stragglers)
        {
            return _stragglers.Contains(worker);
        }
    }

    /// <summary>Ends the run early (Ctrl+C, every worker gone).</summary>
    public void Stop()
    {
        _stopped = true;
        Rule.Finish();
        _ = CompleteAsync();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _evaluationTeam.Dispose();
        _evaluating.Dispose();
    }
}
