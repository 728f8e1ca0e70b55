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

    /// <summary>Checkpoint file written at the end (safetensors), or null.</summary>
    public string? Save { get; init; }

    /// <summary>
    /// Checkpoint whose weights (and batch norm's statistics) the run starts from instead of the
    /// seed's, or null: a safetensors file with the model's tensor names and shapes. The optimizer
    /// starts afresh: its moments are not in checkpoints.
    /// </summary>
    public string? Init { get; init; }

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
        var spec = ModelPresets.Resolve(Model);
        if (Init is not null)
        {
            // Loaded once here, so that a wrong file fails before any training (or any process) starts.
            _ = InitialModel(spec);
        }
        return spec;
    }

    /// <summary>
    /// A model of <paramref name="spec"/> as a run starts it: the seed's weights, or those of
    /// <see cref="Init"/>; throws <see cref="InvalidOptionException"/> naming the file and the
    /// tensor when the checkpoint does not fit the model.
    /// </summary>
    public Sequential InitialModel(ModelSpec spec)
    {
        var model = new Sequential(spec);
        model.Initialize(Seed);
        if (Init is not null)
        {
            try
            {
                Checkpoint.LoadInto(Init, model);
            }
            catch (CheckpointException e)
            {
                throw new InvalidOptionException($"--init: {e.Message}");
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
