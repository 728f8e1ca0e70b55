using System.Globalization;
using System.Text.Json;
using Cluster.Training;
using ScottPlot;

namespace Cluster.Launcher.Commands;

/// <summary>One evaluated epoch of a run, as its <c>--metrics</c> file records it.</summary>
/// <param name="Epoch">The epoch, from 1.</param>
/// <param name="ElapsedSeconds">Training time from the run's start to this epoch's end (its epochs' <c>seconds</c> summed).</param>
/// <param name="TrainLoss">Mean training loss over the epoch.</param>
/// <param name="TestLoss">Test loss after the epoch.</param>
/// <param name="TestAccuracy">Test accuracy after the epoch, a fraction.</param>
/// <param name="ValidationAccuracy">Validation accuracy after the epoch, when the run held data out for it.</param>
internal sealed record EpochPoint(int Epoch, double ElapsedSeconds, double TrainLoss, double TestLoss, double TestAccuracy, double? ValidationAccuracy);

/// <summary>One run's curves: its name in the legend and its epochs in order.</summary>
internal sealed record RunCurves(string Name, IReadOnlyList<EpochPoint> Epochs)
{
    /// <summary>The epoch of the highest test accuracy (the first, on a tie).</summary>
    public EpochPoint Best => Epochs.MaxBy(e => e.TestAccuracy)!;
}

/// <summary>
/// Learning curves from the <c>--metrics</c> files of <c>train</c>, <c>local</c> and <c>server</c>
/// (one JSON object per epoch): test accuracy on the left, training and test loss on the right,
/// one colour per run, over epochs or over training time — the picture that compares a cluster
/// with one process, or one setting with another.
/// </summary>
internal static class LearningCurves
{
    /// <summary>Reads the metrics file at <paramref name="path"/>; a missing file or a line that is not an epoch's record is an <see cref="InvalidOptionException"/> naming the file and the line.</summary>
    public static RunCurves Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new InvalidOptionException($"metrics file '{path}' does not exist; give files written with --metrics");
        }
        var byEpoch = new SortedDictionary<int, (double Seconds, double TrainLoss, double TestLoss, double TestAccuracy, double? Validation)>();
        string? mode = null;
        int workers = 0;
        int number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }
            try
            {
                using var json = JsonDocument.Parse(line);
                var root = json.RootElement;
                int epoch = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("epoch", out var e) && e.TryGetInt32(out int n) && n >= 1
                    ? n
                    : throw new InvalidOptionException($"metrics file '{path}' line {number}: no epoch (a whole number from 1); expected one JSON object per epoch as --metrics writes");
                // NOTE: a resumed run's file may repeat an epoch it trained again; the last record counts.
                byEpoch[epoch] = (Number(root, "seconds", path, number), Number(root, "train_loss", path, number), Number(root, "test_loss", path, number),
                    Number(root, "test_accuracy", path, number),
                    root.TryGetProperty("validation_accuracy", out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null);
                if (root.TryGetProperty("mode", out var m) && m.ValueKind == JsonValueKind.String)
                {
                    mode = m.GetString();
                    workers = root.TryGetProperty("workers", out var w) && w.TryGetInt32(out int count) ? count : 0;
                }
            }
            catch (JsonException)
            {
                throw new InvalidOptionException($"metrics file '{path}' line {number}: not JSON; expected one JSON object per epoch as --metrics writes");
            }
        }
        if (byEpoch.Count == 0)
        {
            throw new InvalidOptionException($"metrics file '{path}' holds no epochs; expected one JSON object per epoch as --metrics writes");
        }
        double elapsed = 0;
        var epochs = new List<EpochPoint>();
        foreach (var (epoch, r) in byEpoch)
        {
            elapsed += r.Seconds;
            epochs.Add(new EpochPoint(epoch, elapsed, r.TrainLoss, r.TestLoss, r.TestAccuracy, r.Validation));
        }
        string name = Path.GetFileNameWithoutExtension(path);
        return new RunCurves(mode is null ? name : $"{name} ({mode}, {workers} worker(s))", epochs);
    }

    /// <summary>Draws <paramref name="runs"/> into the PNG at <paramref name="path"/> (written whole, then moved into place), over training time when <paramref name="overTime"/>, else over epochs.</summary>
    public static void Write(string path, IReadOnlyList<RunCurves> runs, bool overTime)
    {
        var figure = new Multiplot();
        figure.AddPlots(2); // NOTE: the total number of subplots, not how many to add to the one it starts with
        figure.Layout = new ScottPlot.MultiplotLayouts.Columns();
        var accuracy = figure.GetPlot(0);
        var loss = figure.GetPlot(1);
        string xLabel = overTime ? "training time (s)" : "epoch";
        for (int i = 0; i < runs.Count; i++)
        {
            var run = runs[i];
            var color = accuracy.Add.Palette.GetColor(i);
            double[] x = [.. run.Epochs.Select(e => overTime ? e.ElapsedSeconds : e.Epoch)];

            var test = accuracy.Add.Scatter(x, run.Epochs.Select(e => e.TestAccuracy * 100).ToArray());
            test.Color = color;
            test.LegendText = run.Name;
            var validated = run.Epochs.Where(e => e.ValidationAccuracy is not null).ToArray();
            if (validated.Length > 0)
            {
                var validation = accuracy.Add.Scatter(validated.Select(e => overTime ? e.ElapsedSeconds : e.Epoch).ToArray(), validated.Select(e => e.ValidationAccuracy!.Value * 100).ToArray());
                validation.Color = color;
                validation.LinePattern = LinePattern.Dashed;
            }

            // NOTE: no legend of its own: the runs' colours are those of the accuracy panel's legend.
            var train = loss.Add.Scatter(x, run.Epochs.Select(e => e.TrainLoss).ToArray());
            train.Color = color;
            var tested = loss.Add.Scatter(x, run.Epochs.Select(e => e.TestLoss).ToArray());
            tested.Color = color;
            tested.LinePattern = LinePattern.Dashed;
        }
        accuracy.Title(runs.Any(r => r.Epochs.Any(e => e.ValidationAccuracy is not null)) ? "accuracy (solid: test, dashed: validation)" : "test accuracy");
        accuracy.XLabel(xLabel);
        accuracy.YLabel("accuracy (%)");
        accuracy.ShowLegend(Edge.Bottom);
        loss.Title("loss (solid: training, dashed: test)");
        loss.XLabel(xLabel);
        loss.YLabel("cross-entropy");
        if (!overTime)
        {
            int last = runs.Max(r => r.Epochs[^1].Epoch);
            double[] ticks = [.. Enumerable.Range(1, last).Where(e => last <= 12 || e % Math.Max(1, last / 10) == 0).Select(e => (double)e)];
            string[] labels = [.. ticks.Select(t => t.ToString(CultureInfo.InvariantCulture))];
            accuracy.Axes.Bottom.SetTicks(ticks, labels);
            loss.Axes.Bottom.SetTicks(ticks, labels);
        }
        AtomicFile.Write(path, temp => figure.SavePng(temp, 1400, 600));
    }

    private static double Number(JsonElement root, string field, string path, int line) =>
        root.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.Number && double.IsFinite(value.GetDouble())
            ? value.GetDouble()
            : throw new InvalidOptionException($"metrics file '{path}' line {line}: no {field} (a finite number); expected one JSON object per epoch as --metrics writes");
}
