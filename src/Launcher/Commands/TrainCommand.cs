using System.CommandLine;
using System.Globalization;
using Cluster.Data;
using Cluster.Training;

namespace Cluster.Launcher.Commands;

/// <summary><c>cluster train</c>: single-process training with a live progress view, per-epoch test accuracy, metrics and a checkpoint.</summary>
internal static class TrainCommand
{
    public static Command Create(TextWriter output)
    {
        var flags = new TrainingFlags();
        var save = new Option<string?>("--save") { Description = "write a safetensors checkpoint here after every epoch, with the optimizer's state for --resume; at the end it holds the weights the run keeps" };
        var target = new Option<double?>("--target-accuracy") { Description = "stop after the first epoch whose test accuracy reaches this fraction, e.g. 0.9" };
        var command = new Command("train", "train a model on Fashion-MNIST in this process") { save, target };
        flags.AddTo(command);
        command.SetAction((parse, cancel) =>
        {
            var options = flags.Bind(parse) with
            {
                Save = parse.GetValue(save),
                TargetAccuracy = parse.GetValue(target),
            };
            // NOTE: on a thread of its own, so that the invocation can take Ctrl+C while it trains.
            return Task.Run(() => Run(options, output, cancel), CancellationToken.None);
        });
        return command;
    }

    private static int Run(TrainingOptions options, TextWriter output, CancellationToken cancel)
    {
        var spec = options.Validate();
        var data = FashionMnist.Load(options.Data);
        var run = new TrainingRun(options, spec, data);
        output.WriteLine($"cluster train: model {spec.Name ?? options.Model} ({run.Model.ParameterCount:N0} parameters), data {data.Source}");
        output.WriteLine($"optimizer {options.Optimizer} lr {options.EffectiveLearningRate.ToString(CultureInfo.InvariantCulture)} ({options.Schedule}), batch {options.Batch}{(options.Augment is null ? "" : $", augment {options.Augment}")}, {options.Epochs} epoch(s), {options.Threads} thread(s), seed {options.Seed}");
        if (run.ResumedAfterEpoch is int done)
        {
            output.WriteLine($"resuming {options.Resume}: {done} epoch(s) done, training epochs {done + 1} to {options.Epochs}");
        }
        var results = ProgressView.Show(output, observer => run.Run(observer, cancel));
        if (cancel.IsCancellationRequested)
        {
            output.WriteLine(run.SavedEpoch is int saved
                ? $"stopped before the end: {options.Save} holds epoch {saved}; go on with --resume {options.Save}"
                : "stopped before the end: no checkpoint written");
            return 130;
        }
        if (run.BestEpoch is int bestEpoch)
        {
            output.WriteLine(run.StoppedEarly
                ? $"early stopping: validation accuracy stopped improving; keeping the weights of epoch {bestEpoch}"
                : $"keeping the weights of epoch {bestEpoch}, the best on validation");
        }
        if (options.TargetAccuracy is double goal)
        {
            output.WriteLine(run.TimeToAccuracy is double seconds
                ? string.Create(CultureInfo.InvariantCulture, $"time to {goal:P1} test accuracy: {seconds:F1} s")
                : string.Create(CultureInfo.InvariantCulture, $"the target of {goal:P1} test accuracy was not reached in {options.Epochs} epoch(s)"));
        }
        if (run.SavedEpoch is int epoch)
        {
            output.WriteLine($"saved {options.Save} (epoch {epoch})");
        }
        return 0;
    }
}
