using System.CommandLine;
using Cluster.Checkpoints;
using Cluster.Data;
using Cluster.Tensors;
using Cluster.Training;
using Spectre.Console;

namespace Cluster.Launcher.Commands;

/// <summary><c>cluster evaluate --checkpoint FILE</c>: test loss, accuracy and per-class accuracy of a saved model.</summary>
internal static class EvaluateCommand
{
    public static Command Create(TextWriter output)
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "a safetensors checkpoint written by 'cluster train --save'", Required = true };
        var data = CommonOptions.Data();
        var threads = CommonOptions.Threads();
        var command = new Command("evaluate", "evaluate a checkpoint on the Fashion-MNIST test set") { checkpoint, data, threads };
        command.SetAction(parse =>
        {
            int threadCount = parse.GetValue(threads);
            if (threadCount < 1)
            {
                throw new InvalidOptionException($"--threads {threadCount} is not allowed: use 1 or more");
            }
            string path = parse.GetValue(checkpoint)!;
            var loaded = Checkpoint.Load(path);
            var dataset = FashionMnist.Load(parse.GetValue(data), NormalizationMetadata.Read(loaded.Metadata, path));
            loaded.Model.Spec.RequireFits(dataset);
            using var team = new ThreadTeam(threadCount);
            loaded.Model.Team = team;
            var result = Trainer.Evaluate(loaded.Model, dataset.Test);
            var perClass = result.ClassAccuracy;
            var console = Terminal.For(output);
            console.WriteLine($"checkpoint {path}: {loaded.Model.ParameterCount:N0} parameters; data {dataset.Source}");
            var table = new Table().AddColumns("class", "accuracy");
            table.Columns[1].RightAligned();
            for (int c = 0; c < perClass.Length; c++)
            {
                table.AddRow(Markup.Escape(c < FashionMnist.ClassNames.Length ? FashionMnist.ClassNames[c] : c.ToString()), $"{perClass[c]:P1}");
            }
            console.Write(table);
            console.WriteLine($"test loss {result.Loss:F4}, test accuracy {result.Accuracy:P2} on {result.Count:N0} images");
            return 0;
        });
        return command;
    }
}
