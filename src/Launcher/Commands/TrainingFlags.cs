using System.CommandLine;
using Cluster.Training;

namespace Cluster.Launcher.Commands;

/// <summary>The training flags shared by <c>train</c>, <c>server</c>, <c>local</c> and <c>bench scaling</c>, declared once and bound onto <see cref="TrainingOptions"/>.</summary>
internal sealed class TrainingFlags
{
    private static readonly TrainingOptions Defaults = new();
    private bool _hasThreads;

    public Option<string> Model { get; } = CommonOptions.Model();

    public Option<int> Epochs { get; } = new("--epochs") { Description = "passes over the training set", DefaultValueFactory = _ => Defaults.Epochs };

    public Option<int> Batch { get; } = new("--batch") { Description = "samples per step (per worker in a cluster)", DefaultValueFactory = _ => Defaults.Batch };

    public Option<float?> LearningRate { get; } = new("--lr") { Description = "learning rate (default 0.001 for adam, 0.01 for sgd, momentum and nesterov)" };

    public Option<string> Optimizer { get; } = new("--optimizer") { Description = "sgd, momentum, nesterov, adam, adamw, rmsprop or adagrad", DefaultValueFactory = _ => Defaults.Optimizer };

    public Option<float> WeightDecay { get; } = new("--weight-decay") { Description = "L2 weight decay on weights (not biases)", DefaultValueFactory = _ => Defaults.WeightDecay };

    public Option<ulong> Seed { get; } = new("--seed") { Description = "seed of weights, shuffles and dropout", DefaultValueFactory = _ => Defaults.Seed };

    public Option<int> Threads { get; } = CommonOptions.Threads();

    public Option<string?> Data { get; } = CommonOptions.Data();

    public Option<string?> Init { get; } = new("--init") { Description = "start from the weights of this safetensors checkpoint (the model's tensor names and shapes) instead of the seed's; the optimizer starts afresh" };

    public Option<string?> Resume { get; } = new("--resume") { Description = "go on with the run that wrote this checkpoint (--save, after an epoch): its weights, optimizer state and epochs done; --epochs is the total" };

    public Option<string?> Metrics { get; } = new("--metrics") { Description = "write one JSON object per epoch to this file" };

    public Option<string> Schedule { get; } = new("--schedule") { Description = "learning-rate schedule over epochs: " + Optim.LearningRateSchedule.Syntax, DefaultValueFactory = _ => Defaults.Schedule };

    public Option<string?> Augment { get; } = new("--augment") { Description = "augment training images: " + Cluster.Data.Augmentation.Syntax + "; off by default" };

    public Option<float?> ClipNorm { get; } = new("--clip-norm") { Description = "clip the (aggregated) gradient to this global L2 norm before each update" };

    public Option<double?> Validation { get; } = new("--validation") { Description = "fraction of the training data held out for validation (default 0.1 with --patience)" };

    public Option<int?> Patience { get; } = new("--patience") { Description = "early stopping: stop after this many epochs without a better validation accuracy, keeping the best weights" };

    /// <summary>Adds every flag to <paramref name="command"/> (the thread flag only when <paramref name="withThreads"/>).</summary>
    public void AddTo(Command command, bool withThreads = true)
    {
        command.Options.Add(Model);
        command.Options.Add(Epochs);
        command.Options.Add(Batch);
        command.Options.Add(LearningRate);
        command.Options.Add(Optimizer);
        command.Options.Add(WeightDecay);
        command.Options.Add(Seed);
        if (withThreads)
        {
            command.Options.Add(Threads);
            _hasThreads = true;
        }
        command.Options.Add(Data);
        command.Options.Add(Init);
        command.Options.Add(Resume);
        command.Options.Add(Metrics);
        command.Options.Add(Schedule);
        command.Options.Add(ClipNorm);
        command.Options.Add(Augment);
        command.Options.Add(Validation);
        command.Options.Add(Patience);
    }

    /// <summary>The options the parsed flags give.</summary>
    public TrainingOptions Bind(ParseResult parse) => new()
    {
        Model = parse.GetValue(Model)!,
        Epochs = parse.GetValue(Epochs),
        Batch = parse.GetValue(Batch),
        LearningRate = parse.GetValue(LearningRate),
        Optimizer = parse.GetValue(Optimizer)!,
        WeightDecay = parse.GetValue(WeightDecay),
        Seed = parse.GetValue(Seed),
        Threads = _hasThreads ? parse.GetValue(Threads) : Defaults.Threads,
        Data = parse.GetValue(Data),
        Init = parse.GetValue(Init),
        Resume = parse.GetValue(Resume),
        Metrics = parse.GetValue(Metrics),
        Schedule = parse.GetValue(Schedule)!,
        ClipNorm = parse.GetValue(ClipNorm),
        Augment = parse.GetValue(Augment),
        ValidationFraction = parse.GetValue(Validation),
        Patience = parse.GetValue(Patience),
    };

    /// <summary>The same settings as command-line arguments, for starting another process.</summary>
    public static IEnumerable<string> ToArguments(TrainingOptions o)
    {
        yield return "--model";
        yield return o.Model;
        yield return "--epochs";
        yield return o.Epochs.ToString(System.Globalization.CultureInfo.InvariantCulture);
        yield return "--batch";
        yield return o.Batch.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (o.LearningRate is float lr)
        {
            yield return "--lr";
            yield return lr.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        }
        yield return "--optimizer";
        yield return o.Optimizer;
        yield return "--weight-decay";
        yield return o.WeightDecay.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        yield return "--seed";
        yield return o.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (o.Data is not null)
        {
            yield return "--data";
            yield return o.Data;
        }
        if (o.Init is not null)
        {
            // The other process may run in another directory: the path as this one sees it.
            yield return "--init";
            yield return Path.GetFullPath(o.Init);
        }
        if (o.Resume is not null)
        {
            yield return "--resume";
            yield return Path.GetFullPath(o.Resume);
        }
        yield return "--schedule";
        yield return o.Schedule;
        if (o.ClipNorm is float clip)
        {
            yield return "--clip-norm";
            yield return clip.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        }
        if (o.Augment is not null)
        {
            yield return "--augment";
            yield return o.Augment;
        }
        if (o.ValidationFraction is double validation)
        {
            yield return "--validation";
            yield return validation.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        }
        if (o.Patience is int patience)
        {
            yield return "--patience";
            yield return patience.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
    }
}
