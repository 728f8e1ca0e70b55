using System.Globalization;
using System.Text;
using ScottPlot;
using Spectre.Console;

namespace Cluster.Launcher.Commands;

/// <summary>One run of <c>bench scaling</c>: N workers and what the server measured.</summary>
/// <param name="Workers">Workers in the run (N).</param>
/// <param name="ImagesPerSec">Steady-state throughput: samples per update over the mean time between updates (start-up excluded).</param>
/// <param name="WallImagesPerSec">Samples over the server's whole run time, start-up included.</param>
/// <param name="ComputeMs">Forward/backward (or its emulated wait), summed over workers, in ms: like the other parts of the split, over the timed second half of the run (each worker's second half of its steps) when the workers report it, else over the whole run.</param>
/// <param name="PushMs">Pushing gradients, summed over workers, in ms.</param>
/// <param name="PullMs">Transferring weights, summed over workers, in ms.</param>
/// <param name="WaitMs">Pulls held back by the consistency rule, summed over workers, in ms, start-up wait removed.</param>
/// <param name="StartupWaitMs">The first pull's wait for the other workers to start, summed over workers, in ms.</param>
/// <param name="Updates">Updates the server applied.</param>
/// <param name="Samples">Samples those updates covered.</param>
/// <param name="Seconds">The server's run time, in s.</param>
/// <param name="MeanStepMs">Mean time between updates once warm (the second half of the run), in ms.</param>
/// <param name="StepSeriesMs">Every step's time in order, as means over buckets of <paramref name="StepSeriesBucket"/> steps.</param>
/// <param name="StepSeriesBucket">Steps per value of <paramref name="StepSeriesMs"/>.</param>
/// <param name="ComputeBatches">The full batches <paramref name="ComputeMs"/> covers, summed over workers: its samples over the batch size (an epoch's last, shorter batch counts as its share of one).</param>
internal sealed record ScalingPoint(
    int Workers, double ImagesPerSec, double WallImagesPerSec, double ComputeMs, double PushMs, double PullMs, double WaitMs,
    double StartupWaitMs, long Updates, long Samples, double Seconds, double MeanStepMs,
    IReadOnlyList<float>? StepSeriesMs = null, int StepSeriesBucket = 1, double ComputeBatches = 0)
{
    /// <summary>The steady-state time of all workers, in ms.</summary>
    public double TotalMs => Math.Max(1e-9, ComputeMs + PushMs + PullMs + WaitMs);

    /// <summary>
    /// How long one forward/backward pass (or its emulated wait) of a full batch took on average,
    /// in ms, 0 when no samples were reported. With emulated compute this shows how far the wait
    /// overran the timetable on cores shared with the other workers and the server.
    /// </summary>
    public double PassMs => ComputeBatches > 0 ? ComputeMs / ComputeBatches : 0;
}

/// <summary>
/// The results of <c>bench scaling</c> as a console table, a CSV file and a PNG plot. Speed-up and
/// efficiency are relative to the smallest worker count N₀ (normally 1): speed-up(N) =
/// T(N) / T(N₀) and efficiency(N) = T(N) / (N/N₀ · T(N₀)), where T is images/s.
/// </summary>
internal sealed class ScalingReport(string model, string mode, string compute, double emulatedComputeMs, int batch, IReadOnlyList<ScalingPoint> points, int runs = 1)
{
    private ScalingPoint Baseline => points[0];

    /// <summary>Throughput relative to the baseline run.</summary>
    public double SpeedUp(ScalingPoint p) => p.ImagesPerSec / Math.Max(1e-9, Baseline.ImagesPerSec);

    /// <summary>Throughput over what N/N₀ copies of the baseline would give, in [0, 1] normally.</summary>
    public double Efficiency(ScalingPoint p) => SpeedUp(p) * Baseline.Workers / p.Workers;

    /// <summary>The title every output carries: model, mode, compute and batch.</summary>
    public string Title => string.Create(CultureInfo.InvariantCulture,
        $"scaling of {model}, mode {mode}, compute {(compute == "emulated" ? $"emulated ({emulatedComputeMs:F1} ms per step)" : "real")}, batch {batch} per worker{(runs > 1 ? $", median of {runs} runs" : "")}");

    /// <summary>The base of the output file names: <c>scaling-MODEL-MODE-COMPUTE</c>.</summary>
    public string FileStem => $"scaling-{Safe(model)}-{Safe(mode)}-{compute}";

    /// <summary>Writes the table to <paramref name="console"/>.</summary>
    public void WriteTable(IAnsiConsole console)
    {
        var table = new Table().Title(Markup.Escape(Title))
            .AddColumns("workers", "images/s", "speed-up", "efficiency", "compute", "push", "pull", "waiting");
        for (int i = 1; i < table.Columns.Count; i++)
        {
            table.Columns[i].RightAligned();
        }
        foreach (var p in points)
        {
            table.AddRow(
                p.Workers.ToString(CultureInfo.InvariantCulture),
                p.ImagesPerSec.ToString("N0", CultureInfo.InvariantCulture),
                SpeedUp(p).ToString("F2", CultureInfo.InvariantCulture) + "×",
                Efficiency(p).ToString("P0", CultureInfo.InvariantCulture),
                (p.ComputeMs / p.TotalMs).ToString("P0", CultureInfo.InvariantCulture),
                (p.PushMs / p.TotalMs).ToString("P0", CultureInfo.InvariantCulture),
                (p.PullMs / p.TotalMs).ToString("P0", CultureInfo.InvariantCulture),
                (p.WaitMs / p.TotalMs).ToString("P0", CultureInfo.InvariantCulture));
        }
        console.Write(table);
        if (points.Any(p => p.PassMs > 0))
        {
            // NOTE: a line of its own, not a column: the table already fills 80 columns.
            string passes = string.Join(", ", points.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.PassMs:F1} ms at {p.Workers}")));
            console.WriteLine(compute == "emulated"
                ? $"the emulated pass as it ran (asked {emulatedComputeMs.ToString("F1", CultureInfo.InvariantCulture)} ms), mean per full batch: {passes}"
                : $"forward/backward as it ran, mean per full batch: {passes}");
        }
    }

    /// <summary>Writes one row per run to <paramref name="path"/> (invariant culture, fractions in [0, 1]).</summary>
    public void WriteCsv(string path)
    {
        var csv = new StringBuilder();
        csv.AppendLine("model,mode,compute,emulated_compute_ms,batch,workers,images_per_sec,speedup,efficiency,compute_frac,push_frac,pull_frac,wait_frac,"
            + "compute_ms,push_ms,pull_ms,wait_ms,startup_wait_ms,updates,samples,seconds,mean_step_ms,wall_images_per_sec,runs,pass_ms");
        foreach (var p in points)
        {
            csv.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{Safe(model)},{mode},{compute},{emulatedComputeMs:F3},{batch},{p.Workers},{p.ImagesPerSec:F1},{SpeedUp(p):F4},{Efficiency(p):F4},"
                + $"{p.ComputeMs / p.TotalMs:F4},{p.PushMs / p.TotalMs:F4},{p.PullMs / p.TotalMs:F4},{p.WaitMs / p.TotalMs:F4},"
                + $"{p.ComputeMs:F1},{p.PushMs:F1},{p.PullMs:F1},{p.WaitMs:F1},{p.StartupWaitMs:F1},{p.Updates},{p.Samples},{p.Seconds:F2},{p.MeanStepMs:F3},{p.WallImagesPerSec:F1},{runs},{p.PassMs:F3}"));
        }
        AtomicFile.Write(path, tmp => File.WriteAllText(tmp, csv.ToString()));
    }

    /// <summary>Plots images/s against workers with the ideal linear line, and efficiency on a right-hand axis.</summary>
    public void WritePng(string path)
    {
        var plot = new Plot();
        plot.Font.Automatic();
        double[] workers = [.. points.Select(p => (double)p.Workers)];
        double[] measured = [.. points.Select(p => p.ImagesPerSec)];
        double[] ideal = [.. points.Select(p => Baseline.ImagesPerSec * p.Workers / Baseline.Workers)];
        double[] efficiency = [.. points.Select(p => 100 * Efficiency(p))];

        var idealLine = plot.Add.Scatter(workers, ideal);
        idealLine.LegendText = "ideal (linear) images/s";
        idealLine.LinePattern = LinePattern.Dashed;
        idealLine.LineWidth = 2;
        idealLine.MarkerSize = 0;
        idealLine.Color = Colors.Gray;

        var measuredLine = plot.Add.Scatter(workers, measured);
        measuredLine.LegendText = "measured images/s";
        measuredLine.LineWidth = 3;
        measuredLine.MarkerSize = 9;
        measuredLine.Color = Colors.C0;

        var efficiencyLine = plot.Add.Scatter(workers, efficiency);
        efficiencyLine.LegendText = "efficiency, % (right axis)";
        efficiencyLine.LineWidth = 2;
        efficiencyLine.MarkerSize = 8;
        efficiencyLine.MarkerShape = MarkerShape.FilledSquare;
        efficiencyLine.Color = Colors.C1;
        efficiencyLine.Axes.YAxis = plot.Axes.Right;

        plot.Title(Title, 14);
        plot.XLabel("workers");
        plot.YLabel("images/s");
        plot.Axes.Right.Label.Text = "efficiency (%)";
        plot.Axes.Bottom.SetTicks(workers, [.. points.Select(p => p.Workers.ToString(CultureInfo.InvariantCulture))]);
        plot.Axes.SetLimitsX(0, workers[^1] * 1.05);
        plot.Axes.SetLimitsY(0, Math.Max(ideal.Max(), measured.Max()) * 1.08, plot.Axes.Left);
        plot.Axes.SetLimitsY(0, Math.Max(110, efficiency.Max() * 1.08), plot.Axes.Right);
        plot.ShowLegend(Edge.Bottom);
        AtomicFile.Write(path, tmp => plot.SavePng(tmp, 960, 600));
    }

    /// <summary>The base of the step-time files: <see cref="FileStem"/> and <c>-steps</c>.</summary>
    public string StepsFileStem => FileStem + "-steps";

    /// <summary>Writes each run's step times, one row per value of its series: workers, first step, steps averaged, ms.</summary>
    public void WriteStepsCsv(string path)
    {
        var csv = new StringBuilder();
        csv.AppendLine("workers,first_step,steps,step_ms,timed");
        foreach (var p in points)
        {
            var series = p.StepSeriesMs ?? [];
            long timedFrom = TimedFrom(p);
            for (int b = 0; b < series.Count; b++)
            {
                long first = (long)b * p.StepSeriesBucket;
                long steps = Math.Min(p.StepSeriesBucket, Math.Max(1, p.Updates - 1 - first));
                csv.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{p.Workers},{first},{steps},{series[b]:F3},{(first >= timedFrom ? 1 : 0)}"));
            }
        }
        AtomicFile.Write(path, tmp => File.WriteAllText(tmp, csv.ToString()));
    }

    /// <summary>
    /// Plots each run's step time against the step, one line per worker count, with a dotted line
    /// where its timed second half starts: the warm-up and the steady state a person can judge at a glance.
    /// </summary>
    public void WriteStepsPng(string path)
    {
        var plot = new Plot();
        plot.Font.Automatic();
        double top = 0;
        long longest = 1;
        for (int i = 0; i < points.Count; i++)
        {
            var p = points[i];
            var series = p.StepSeriesMs ?? [];
            if (series.Count == 0)
            {
                continue;
            }
            double[] steps = [.. Enumerable.Range(0, series.Count).Select(b => (b + 0.5) * p.StepSeriesBucket)];
            double[] ms = MovingMean(series, Math.Max(1, SmoothingSteps / p.StepSeriesBucket));
            var color = plot.Add.Palette.GetColor(i);
            var line = plot.Add.Scatter(steps, ms);
            line.LegendText = $"{p.Workers} worker(s)";
            line.LineWidth = 2;
            line.MarkerSize = 0;
            line.Color = color;
            var timed = plot.Add.VerticalLine(TimedFrom(p));
            timed.LinePattern = LinePattern.Dotted;
            timed.LineWidth = 2;
            timed.Color = color;
            top = Math.Max(top, p.MeanStepMs);
            longest = Math.Max(longest, p.Updates);
        }
        plot.Title(StepsTitle, 14);
        plot.XLabel($"step (each point the mean of {SmoothingSteps} steps around it; dotted: where the timed second half starts)");
        plot.YLabel("step time (ms)");
        plot.Axes.SetLimitsX(0, longest * 1.02);
        // The first steps (connections, JIT) take many times longer; the steady state is what to read.
        plot.Axes.SetLimitsY(0, Math.Max(1, top * 2.5));
        plot.ShowLegend(Edge.Bottom);
        AtomicFile.Write(path, tmp => plot.SavePng(tmp, 960, 600));
    }

    /// <summary>Steps each point of the step-time plot averages: single steps jitter by a few ms on a shared machine.</summary>
    private const int SmoothingSteps = 20;

    /// <summary>The mean of the <paramref name="window"/> values centred on each value (fewer at the ends).</summary>
    internal static double[] MovingMean(IReadOnlyList<float> values, int window)
    {
        var mean = new double[values.Count];
        int half = window / 2;
        for (int i = 0; i < values.Count; i++)
        {
            int from = Math.Max(0, i - half), to = Math.Min(values.Count, i - half + window);
            double sum = 0;
            for (int j = from; j < to; j++)
            {
                sum += values[j];
            }
            mean[i] = sum / (to - from);
        }
        return mean;
    }

    /// <summary>The step-time plot's title.</summary>
    public string StepsTitle => "step times: " + Title;

    /// <summary>The first step of a run's timed second half (a step is the time between two updates).</summary>
    private static long TimedFrom(ScalingPoint p) => ParameterServer.RunRecorder.WarmUpSteps(Math.Max(0, p.Updates - 1));

    private static string Safe(string name)
    {
        string stem = Path.GetFileNameWithoutExtension(name);
        return new string([.. stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '-')]);
    }
}
