using System.CommandLine;
using Cluster.Training;
using Spectre.Console;

namespace Cluster.Launcher.Commands;

/// <summary><c>cluster plot METRICS...</c>: the learning curves of one or more runs' <c>--metrics</c> files in one PNG, and each run's best epoch.</summary>
internal static class PlotCommand
{
    public static Command Create(TextWriter output)
    {
        var files = new Argument<string[]>("metrics") { Description = "--metrics files of train, local or server runs (one JSON object per epoch)", Arity = ArgumentArity.OneOrMore };
        var outPath = new Option<string?>("--out") { Description = "the PNG to write (default: the first metrics file's name with .png)" };
        var x = new Option<string>("--x") { Description = "what the curves run over: epoch, or time (training seconds from each run's start, for time-to-accuracy)", DefaultValueFactory = _ => "epoch" };
        var command = new Command("plot", "draw runs' learning curves (test accuracy, training and test loss) from their --metrics files into a PNG") { files, outPath, x };
        command.SetAction(parse =>
        {
            string over = parse.GetValue(x)!;
            if (over is not ("epoch" or "time"))
            {
                throw new InvalidOptionException($"--x '{over}' is not known: use epoch or time");
            }
            string[] paths = parse.GetValue(files)!;
            string target = parse.GetValue(outPath) ?? Path.ChangeExtension(paths[0], ".png");
            if (!target.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOptionException($"--out '{target}' is not a .png file: give a path ending in .png");
            }
            string directory = Path.GetDirectoryName(Path.GetFullPath(target))!;
            if (!Directory.Exists(directory))
            {
                throw new InvalidOptionException($"--out '{target}': directory '{directory}' does not exist");
            }
            var runs = paths.Select(LearningCurves.Read).ToList();
            LearningCurves.Write(target, runs, over == "time");

            var console = Terminal.For(output);
            var table = new Table().AddColumns("run", "epochs", "best test accuracy", "at epoch", "after");
            for (int column = 1; column < table.Columns.Count; column++)
            {
                table.Columns[column].RightAligned();
            }
            foreach (var run in runs)
            {
                var best = run.Best;
                table.AddRow(Markup.Escape(run.Name), run.Epochs.Count.ToString(), $"{best.TestAccuracy:P2}", best.Epoch.ToString(), $"{best.ElapsedSeconds:F1} s");
            }
            console.Write(table);
            console.WriteLine($"wrote {target}");
            return 0;
        });
        return command;
    }
}
