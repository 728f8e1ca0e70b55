using System.CommandLine;
using System.Globalization;
using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Training;

namespace Cluster.Launcher.Commands;

/// <summary><c>cluster train</c>: single-process training with a live progress view, per-epoch test accuracy, metrics and a checkpoint.</summary>
internal static class TrainCommand
{
    public static Command Create(TextWriter output)
    {
        var defaults = new TrainingOptions();
        var model = CommonOptions.Model();
        var epochs = new Option<int>("--epochs") { Description = "passes over the training set", DefaultValueFactory = _ => defaults.Epochs };
        var batch = new Option<int>("--batch") { Description = "samples per step", DefaultValueFactory = _ => defaults.Batch };
        var lr = new Option<float?>("--lr") { Description = "learning rate (default 0.001 for adam, 0.01 for sgd, momentum and nesterov)" };
        var optimizer = new Option<string>("--optimizer") { Description = "sgd, momentum, nesterov or adam", DefaultValueFactory = _ => defaults.Optimizer };
        var weightDecay = new Option<float>("--weight-decay") { Description = "L2 weight decay on weights (not biases)", DefaultValueFactory = _ => defaults.WeightDecay };
        var seed = new Option<ulong>("--seed") { Description = "seed of weights, shuffles and dropout", DefaultValueFactory = _ => defaults.Seed };
        var threads = CommonOptions.Threads();
        var data = CommonOptions.Data();
        var save = new Option<string?>("--save") { Description = "write a safetensors checkpoint here at the end" };
        var metrics = new Option<string?>("--metrics") { Description = "write one JSON object per epoch to this file" };
        var command = new Command("train", "train a model on Fashion-MNIST in this process")
        {
            model, epochs, batch, lr, optimizer, weightDecay, seed, threads, data, save, metrics,
        };
        command.SetAction((parse, cancel) =>
        {
            var options = new TrainingOptions
            {
                Model = parse.GetValue(model)!,
                Epochs = parse.GetValue(epochs),
                Batch = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr),
                Optimizer = parse.GetValue(optimizer)!,
                WeightDecay = parse.GetValue(weightDecay),
                Seed = parse.GetValue(seed),
                Threads = parse.GetValue(threads),
                Data = parse.GetValue(data),
                Save = parse.GetValue(save),
                Metrics = parse.GetValue(metrics),
            };
            return Task.FromResult(Run(options, output, cancel));
        });
        return command;
    }

    private static int Run(TrainingOptions options, TextWriter output, CancellationToken cancel)
    {
        var spec = options.Validate();
        var data = FashionMnist.Load(options.Data);
        var run = new TrainingRun(options, spec, data);
        output.WriteLine($"cluster train: model {spec.Name ?? options.Model} ({run.Model.ParameterCount:N0} parameters), data {data.Source}");
        output.WriteLine($"optimizer {options.Optimizer} lr {options.EffectiveLearningRate.ToString(CultureInfo.InvariantCulture)}, batch {options.Batch}, {options.Epochs} epoch(s), {options.Threads} thread(s), seed {options.Seed}");
        var results = ProgressView.Show(output, observer => run.Run(observer, cancel));
        if (cancel.IsCancellationRequested)
        {
            output.WriteLine("stopped before the end: no checkpoint written");
            return 130;
        }
        if (options.Save is not null && results.Count > 0)
        {
            var last = results[^1];
            Checkpoint.Save(options.Save, run.Model, new Dictionary<string, string>
            {
                ["cluster.epochs"] = last.Epoch.ToString(CultureInfo.InvariantCulture),
                ["cluster.test_accuracy"] = last.TestAccuracy.ToString("F4", CultureInfo.InvariantCulture),
                ["cluster.seed"] = options.Seed.ToString(CultureInfo.InvariantCulture),
                [NormalizationMetadata.MeanKey] = data.Normalization.Mean.ToString("R", CultureInfo.InvariantCulture),
                [NormalizationMetadata.StdDevKey] = data.Normalization.StdDev.ToString("R", CultureInfo.InvariantCulture),
            });
            output.WriteLine($"saved {options.Save}");
        }
        return 0;
    }
}
