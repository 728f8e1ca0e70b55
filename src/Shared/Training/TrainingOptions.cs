using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;

namespace Cluster.Training;

/// <summary>
/// Everything that decides a training run. Each default is stated here once; the command line and
/// configuration bind onto these names, and <see cref="Validate"/> runs before any work starts.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>A preset name (<c>lenet</c>, <c>mlp</c>) or the path of a model spec file. Default <c>lenet</c>.</summary>
    public string Model { get; init; } = "lenet";

    /// <summary>Passes over the training set; at least 1. Default 2.</summary>
    public int Epochs { get; init; } = 2;

    /// <summary>Samples per step; at least 1. Default 64.</summary>
    public int Batch { get; init; } = 64;

    /// <summary>Step size; positive. Default: <see cref="DefaultLearningRate"/> of the optimizer.</summary>
    public float? LearningRate { get; init; }

    /// <summary>Optimizer: sgd, momentum, nesterov (μ = 0.9) or adam. Default adam.</summary>
    public string Optimizer { get; init; } = "adam";

    /// <summary>The step size used when none is given: 0.001 for adam, 0.01 for the SGD family (PyTorch's customary values).</summary>
    public static float DefaultLearningRate(string optimizer) => optimizer == "adam" ? 0.001f : 0.01f;

    /// <summary>The step size in force: the one given, or the optimizer's default.</summary>
    public float EffectiveLearningRate => LearningRate ?? DefaultLearningRate(Optimizer);

    /// <summary>L2 weight decay on weights (not biases); ≥ 0. Default 0.</summary>
    public float WeightDecay { get; init; }

    /// <summary>Seed of the initial weights, the shuffles and dropout. Default 1.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Compute threads; at least 1. Default: the machine's core count.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Data: <c>embedded</c>, a directory of Fashion-MNIST IDX files, or null for the system copy when installed, else the embedded subset.</summary>
    public string? Data { get; init; }

    /// <summary>
    /// Checkpoint file (safetensors), or null: written after every epoch with the optimizer's state,
    /// so that <see cref="Resume"/> can go on from it, and at the end holding the weights the run keeps.
    /// </summary>
    public string? Save { get; init; }

    /// <summary>
    /// Checkpoint whose weights (and batch norm's statistics) the run starts from instead of the
    /// seed's, or null: a safetensors file with the model's tensor names and shapes. The optimizer
    /// starts afresh and the run counts its epochs from 1.
    /// </summary>
    public string? Init { get; init; }

    /// <summary>
    /// Checkpoint of an earlier run to go on from, or null: one written by <see cref="Save"/> after
    /// an epoch, holding the weights, batch norm's statistics, the optimizer's state and the epochs
    /// done. The run continues with the next epoch up to <see cref="Epochs"/>, with the data order,
    /// dropout masks and learning rate that epoch would have had: the weights at the end are those
    /// of a run that was never stopped.
    /// </summary>
    public string? Resume { get; init; }

    /// <summary>File receiving one JSON object per epoch, or null.</summary>
    public string? Metrics { get; init; }

    /// <summary>Learning-rate schedule over epochs (see <see cref="LearningRateSchedule.Syntax"/>). Default constant.</summary>
    public string Schedule { get; init; } = "constant";

    /// <summary>Training-image augmentation (see <see cref="Augmentation.Syntax"/>), or null for none (the default).</summary>
    public string? Augment { get; init; }

    /// <summary>Clip the gradient to this global L2 norm before each update, or null for no clipping.</summary>
    public float? ClipNorm { get; init; }

    /// <summary>Fraction of the training data held out (seeded) for validation, or null: none, or 0.1 when <see cref="Patience"/> is set.</summary>
    public double? ValidationFraction { get; init; }

    /// <summary>Early stopping: stop when validation accuracy has not improved for this many epochs, and keep the best weights. Null: off.</summary>
    public int? Patience { get; init; }

    /// <summary>The validation fraction in force: the one given, 0.1 with early stopping, else none.</summary>
    public double? EffectiveValidationFraction => ValidationFraction ?? (Patience is null ? null : 0.1);

    /// <summary>Stop after the first epoch whose test accuracy reaches this fraction (time-to-accuracy), or null.</summary>
    public double? TargetAccuracy { get; init; }

    /// <summary>Throws <see cref="InvalidOptionException"/> for the first setting out of range; resolves the model (which may throw <see cref="ModelSpecException"/>).</summary>
    public ModelSpec Validate()
    {
        if (Epochs < 1)
        {
            throw new InvalidOptionException($"--epochs {Epochs} is not allowed: use 1 or more");
        }
        if (Batch < 1)
        {
            throw new InvalidOptionException($"--batch {Batch} is not allowed: use 1 or more");
        }
        if (!(EffectiveLearningRate > 0f) || float.IsInfinity(EffectiveLearningRate))
        {
            throw new InvalidOptionException($"--lr {EffectiveLearningRate} is not allowed: use a number greater than 0");
        }
        if (!(WeightDecay >= 0f) || float.IsInfinity(WeightDecay))
        {
            throw new InvalidOptionException($"--weight-decay {WeightDecay} is not allowed: use 0 or more");
        }
        if (Threads < 1)
        {
            throw new InvalidOptionException($"--threads {Threads} is not allowed: use 1 or more");
        }
        if (!OptimizerOptions.Names.Contains(Optimizer))
        {
            throw new InvalidOptionException($"--optimizer '{Optimizer}' is not known: use one of {string.Join(", ", OptimizerOptions.Names)}");
        }
        if (TargetAccuracy is double t && !(t > 0 && t <= 1))
        {
            throw new InvalidOptionException($"--target-accuracy {t} is not allowed: use a fraction in (0, 1], e.g. 0.9");
        }
        if (ClipNorm is float clip && !(clip > 0f && float.IsFinite(clip)))
        {
            throw new InvalidOptionException($"--clip-norm {clip} is not allowed: use a number greater than 0");
        }
        _ = ParseSchedule();
        if (Augment is not null)
        {
            try
            {
                Augmentation.CheckSyntax(Augment);
            }
            catch (ArgumentException e)
            {
                throw new InvalidOptionException($"--augment: {e.Message}");
            }
        }
        if (ValidationFraction is double v && !(v > 0 && v < 1))
        {
            throw new InvalidOptionException($"--validation {v} is not allowed: use a fraction in (0, 1), e.g. 0.1");
        }
        if (Patience is int p && p < 1)
        {
            throw new InvalidOptionException($"--patience {p} is not allowed: use 1 or more epochs");
        }
        CheckOutputPath(Save, "--save");
        CheckOutputPath(Metrics, "--metrics");
        if (Init is not null && Resume is not null)
        {
            throw new InvalidOptionException("--init and --resume are both given: --init starts a new run from a checkpoint's weights, --resume goes on with an earlier run; give one");
        }
        var spec = ModelPresets.Resolve(Model);
        if (Init is not null || Resume is not null)
        {
            // Loaded once here, so that a wrong file fails before any training (or any process) starts.
            var model = InitialModel(spec);
            if (ResumePointFor(model) is { } point && point.EpochsDone >= Epochs)
            {
                throw new InvalidOptionException($"--resume: checkpoint '{Resume}' is at epoch {point.EpochsDone} already, which --epochs {Epochs} leaves nothing to train after; give --epochs above {point.EpochsDone} (the total, counting the epochs done)");
            }
        }
        return spec;
    }

    /// <summary>
    /// Where a resumed run goes on from: the epochs <see cref="Resume"/>'s checkpoint has done and
    /// its optimizer's state, checked against this run's optimizer and <paramref name="model"/>;
    /// null without <see cref="Resume"/>. Throws <see cref="InvalidOptionException"/> naming the file
    /// and what is wrong.
    /// </summary>
    public ResumePoint? ResumePointFor(Sequential model)
    {
        if (Resume is null)
        {
            return null;
        }
        OptimizerState? state;
        IReadOnlyDictionary<string, string> metadata;
        try
        {
            state = Checkpoint.LoadOptimizerState(Resume, model);
            metadata = Checkpoint.ReadMetadata(Resume);
        }
        catch (CheckpointException e)
        {
            throw new InvalidOptionException($"--resume: {e.Message}");
        }
        if (state is null)
        {
            throw new InvalidOptionException($"--resume: checkpoint '{Resume}' holds no optimizer state (it keeps a model, not a run to go on with); start a new run from its weights with --init");
        }
        if (state.Optimizer != Optimizer)
        {
            throw new InvalidOptionException($"--resume: checkpoint '{Resume}' holds {state.Optimizer}'s state but this run uses --optimizer {Optimizer}; resume with --optimizer {state.Optimizer}, or start afresh from its weights with --init");
        }
        if (!metadata.TryGetValue(NormalizationMetadata.EpochsKey, out string? epochsText)
            || !int.TryParse(epochsText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int epochs) || epochs < 1)
        {
            throw new InvalidOptionException($"--resume: checkpoint '{Resume}' has metadata {NormalizationMetadata.EpochsKey}={(epochsText is null ? "(none)" : $"'{epochsText}'")}; expected the epochs done, 1 or more");
        }
        var expected = Optim.Optimizer.Create(OptimizerOptions, model.NamedParameters);
        try
        {
            expected.RestoreState(state);
        }
        catch (ArgumentException e)
        {
            string message = e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);
            throw new InvalidOptionException($"--resume: checkpoint '{Resume}': {message}");
        }
        BestWeights? best = null;
        if (Patience is not null)
        {
            try
            {
                // NOTE: a checkpoint written without --patience holds none: early stopping then counts from the resumed epoch.
                best = Checkpoint.LoadBest(Resume, model);
            }
            catch (CheckpointException e)
            {
                throw new InvalidOptionException($"--resume: {e.Message}");
            }
        }
        return new ResumePoint(epochs, state, best);
    }

    /// <summary>
    /// A model of <paramref name="spec"/> as a run starts it: the seed's weights, or those of
    /// <see cref="Init"/> or <see cref="Resume"/>; throws <see cref="InvalidOptionException"/>
    /// naming the file and the tensor when the checkpoint does not fit the model.
    /// </summary>
    public Sequential InitialModel(ModelSpec spec)
    {
        var model = new Sequential(spec);
        model.Initialize(Seed);
        if ((Init ?? Resume) is string path)
        {
            try
            {
                Checkpoint.LoadInto(path, model);
            }
            catch (CheckpointException e)
            {
                throw new InvalidOptionException($"{(Init is null ? "--resume" : "--init")}: {e.Message}");
            }
        }
        return model;
    }

    /// <summary>The schedule named by <see cref="Schedule"/>; throws <see cref="InvalidOptionException"/> for a bad one.</summary>
    public LearningRateSchedule ParseSchedule()
    {
        try
        {
            return LearningRateSchedule.Parse(Schedule, Epochs);
        }
        catch (ArgumentException e)
        {
            string message = e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);
            throw new InvalidOptionException($"--schedule: {message}");
        }
    }

    /// <summary>
    /// The augmentation named by <see cref="Augment"/> for the training images of
    /// <paramref name="data"/>, or null; throws <see cref="InvalidOptionException"/> for a bad one.
    /// (<see cref="Validate"/> checks only the form: how far an image may shift depends on its size.)
    /// </summary>
    public Augmentation? ParseAugmentation(FashionMnist data)
    {
        try
        {
            var images = data.Train;
            return Augment is null ? null : Augmentation.Parse(Augment, images.Channels, images.Height, images.Width, data.Normalization.Background);
        }
        catch (ArgumentException e)
        {
            throw new InvalidOptionException($"--augment: {e.Message}");
        }
    }

    /// <summary>The optimizer settings these options imply.</summary>
    public OptimizerOptions OptimizerOptions => new()
    {
        Name = Optimizer,
        LearningRate = EffectiveLearningRate,
        WeightDecay = WeightDecay,
    };

    /// <summary>Checks that an output file can be created: its directory exists and it is not a directory.</summary>
    public static void CheckOutputPath(string? path, string flag)
    {
        if (path is null)
        {
            return;
        }
        string full = Path.GetFullPath(path);
        string? directory = Path.GetDirectoryName(full);
        if (directory is not null && !Directory.Exists(directory))
        {
            throw new InvalidOptionException($"{flag} '{path}': directory '{directory}' does not exist");
        }
        if (Directory.Exists(full))
        {
            throw new InvalidOptionException($"{flag} '{path}' is a directory: give a file name");
        }
    }
}

/// <summary>Where a resumed run goes on from.</summary>
/// <param name="EpochsDone">Epochs the checkpoint's run had finished; the resumed run starts with the next.</param>
/// <param name="Optimizer">The optimizer's state at the end of that epoch.</param>
/// <param name="Best">With early stopping, the best weights the run had kept by then, if the checkpoint holds them.</param>
public sealed record ResumePoint(int EpochsDone, OptimizerState Optimizer, BestWeights? Best = null);
