using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Cluster.Data;
using Cluster.Models;
using Cluster.Optim;
using Cluster.ParameterServer;
using Cluster.Tensors;
using Cluster.Training;
using Cluster.Wire;
using Spectre.Console;

namespace Cluster.Launcher.Commands;

/// <summary>
/// <c>cluster bench scaling</c>: runs a local cluster once per worker count and reports how
/// throughput scales: images/s, speed-up and efficiency against the smallest count, and where the
/// workers' time goes (compute, push, pull, waiting), as a table, a CSV file and a PNG plot. With
/// <c>--compute emulated</c> each worker waits the measured duration of one forward/backward pass
/// instead of computing, so many workers on few cores measure the wire and the server, not the
/// contention for cores.
/// </summary>
internal static class BenchScalingCommand
{
    /// <summary>Steps timed (after warm-up) to measure one forward/backward pass for emulated compute.</summary>
    private const int TimedSteps = 20;

    /// <summary>
    /// Steps every worker makes at least, whatever <c>--samples-per-run</c> says: throughput is
    /// timed over the second half of a run (<see cref="RunRecorder.SteadyMean"/>), which must be
    /// past the JIT warm-up of every process: with 8 workers on 2 cores the workers' JIT compilers
    /// still tier up hot methods, all at the same step, until about step 370 (11 s).
    /// </summary>
    private const int MinStepsPerWorker = 1000;

    /// <summary>Most runs per worker count.</summary>
    private const int MaxRepeats = 9;

    /// <summary>Creates <c>bench</c> with its <c>scaling</c> subcommand.</summary>
    public static Command Create(TextWriter output) => new("bench", "measure a local cluster") { CreateScaling(output) };

    private static Command CreateScaling(TextWriter output)
    {
        var flags = new ClusterFlags();
        var workers = new Option<string>("--workers") { Description = "worker counts to run, comma-separated", DefaultValueFactory = _ => "1,2,4,8" };
        var samples = new Option<int>("--samples-per-run") { Description = $"samples each run trains on at least (and {MinStepsPerWorker} steps per worker), rounded up to whole epochs", DefaultValueFactory = _ => 40_000 };
        var repeats = new Option<int>("--repeats") { Description = $"runs per worker count, taken in turns (1, 2, 4, …, 1, 2, 4, …); each count reports its median run (1 to {MaxRepeats})", DefaultValueFactory = _ => 1 };
        var outDir = new Option<string>("--out") { Description = "directory for the CSV file, the PNG plot and the runs' logs", DefaultValueFactory = _ => "scaling-results" };
        // NOTE: a benchmark should not depend on what happens to be installed: the embedded subset by default.
        flags.Training.Data.DefaultValueFactory = _ => "embedded";
        flags.Training.Data.Description = "Fashion-MNIST: 'embedded' or a directory of IDX files";
        var command = new Command("scaling", "run a local cluster for each worker count and report images/s, speed-up, efficiency and the time split")
        {
            workers, samples, repeats, outDir,
            flags.Training.Model, flags.Training.Batch, flags.Training.LearningRate, flags.Training.Optimizer, flags.Training.WeightDecay,
            flags.Training.Seed, flags.Training.Data, flags.Training.Schedule, flags.Training.ClipNorm, flags.Training.Augment,
            flags.BackupWorkers, flags.Mode, flags.ChunkFloats, flags.PushLanes, flags.Compute, flags.EmulatedComputeMs, flags.EmulatedChunkReadyMs, flags.EmulatedChunkNeededMs, flags.EmulatedForwardMs, flags.WorkerThreads,
        };
        command.SetAction(async (parse, cancel) =>
        {
            var counts = ParseWorkers(parse.GetValue(workers)!);
            int perRun = parse.GetValue(samples);
            if (perRun < 1)
            {
                throw new InvalidOptionException($"--samples-per-run {perRun} is not allowed: use 1 or more");
            }
            int runs = parse.GetValue(repeats);
            if (runs < 1 || runs > MaxRepeats)
            {
                throw new InvalidOptionException($"--repeats {runs} is not allowed: use 1 to {MaxRepeats}");
            }
            // --epochs and --metrics are not flags here: the run length comes from --samples-per-run.
            // The test set is evaluated once, at the end of each run: evaluations are not training throughput.
            var options = flags.Bind(parse) with { Workers = counts[^1], Host = "127.0.0.1", Port = 0, TargetAccuracy = null, EvaluateEachEpoch = false };
            options = options with { Training = options.Training with { Epochs = 1, Metrics = null } };
            options.Validate();
            bool emulatedGiven = parse.GetResult(flags.EmulatedComputeMs) is not null;
            return await RunAsync(options, counts, perRun, runs, emulatedGiven, parse.GetValue(outDir)!, output, cancel).ConfigureAwait(false);
        });
        return command;
    }

    /// <summary>The run of median throughput (the lower middle one of an even number), with its own time split.</summary>
    internal static ScalingPoint MedianRun(IReadOnlyList<ScalingPoint> runs) =>
        runs.OrderBy(p => p.ImagesPerSec).ElementAt((runs.Count - 1) / 2);

    /// <summary>Parses <c>1,2,4,8</c> into distinct ascending counts of 1 to 256.</summary>
    internal static int[] ParseWorkers(string text)
    {
        var counts = new SortedSet<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1 || n > 256)
            {
                throw new InvalidOptionException($"--workers '{text}': '{part}' is not a worker count; use a comma-separated list of counts from 1 to 256, e.g. 1,2,4,8");
            }
            counts.Add(n);
        }
        return [.. counts];
    }

    private static async Task<int> RunAsync(ServerOptions options, int[] counts, int samplesPerRun, int repeats, bool emulatedGiven, string outDir, TextWriter output, CancellationToken cancel)
    {
        var data = FashionMnist.Load(options.Training.Data);
        options.Training.Validate().RequireFits(data);
        _ = options.Training.ParseAugmentation(data);
        int EpochsFor(int workers) => (int)Math.Ceiling(Math.Max(samplesPerRun, (double)MinStepsPerWorker * workers * options.Training.Batch) / data.Train.Count);
        if (options.Compute == "emulated" && !emulatedGiven)
        {
            output.WriteLine($"measuring one forward/backward pass of {options.Training.Model} at batch {options.Training.Batch} on {options.WorkerThreads} thread(s)...");
            var profile = MeasureCompute(options.Training.Model, options.Training.Batch, options.WorkerThreads, options.ChunkFloats);
            options = options with
            {
                EmulatedComputeMs = profile.ComputeMs,
                EmulatedForwardMs = profile.ForwardMs,
                EmulatedChunkNeededMs = profile.NeededMs,
                EmulatedChunkReadyMs = profile.ReadyMs,
            };
        }
        Directory.CreateDirectory(outDir);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bench scaling: {options.Training.Model}, mode {options.Mode}, compute {options.Compute}{(options.Compute == "emulated" ? $" ({options.EmulatedComputeMs:F2} ms per step, forward {options.EmulatedForwardMs:F1} ms{Times("weights needed at", options.EmulatedChunkNeededMs)}{Times("gradients final at", options.EmulatedChunkReadyMs)})" : "")}, "
            + $"at least {samplesPerRun:N0} samples and {MinStepsPerWorker} steps per worker in each run, in whole epochs of {data.Source}; workers {string.Join(",", counts)}"));

        // NOTE: with repeats the counts take turns, so that a drift in the machine's load falls on
        // every count alike rather than on whichever ran during it.
        var runs = counts.ToDictionary(n => n, _ => new List<ScalingPoint>());
        for (int r = 0; r < repeats; r++)
        {
            foreach (int n in counts)
            {
                string logs = Path.Combine(outDir, "logs", repeats == 1 ? $"workers-{n}" : $"workers-{n}-run-{r + 1}");
                var clock = Stopwatch.StartNew();
                var run = options with { Workers = n, Training = options.Training with { Epochs = EpochsFor(n) } };
                var result = await LocalCommand.RunAsync(run, new Dictionary<int, double>(), logs, output, live: false, quiet: true, cancel).ConfigureAwait(false);
                if (result.ExitCode == 130)
                {
                    output.WriteLine($"stopped during the run with {n} worker(s): no results written");
                    return 130;
                }
                if (result.ExitCode != 0 || result.Status is null)
                {
                    output.WriteLine($"the run with {n} worker(s) failed (exit code {result.ExitCode}); logs in {logs}");
                    return result.ExitCode == 0 ? 1 : result.ExitCode;
                }
                var point = ToPoint(n, result.Status, options.Training.Batch);
                runs[n].Add(point);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {n} worker(s){(repeats > 1 ? $", run {r + 1} of {repeats}" : "")}: {point.ImagesPerSec:N0} images/s, {run.Training.Epochs} epoch(s), {point.Updates:N0} updates, {clock.Elapsed.TotalSeconds:F1} s"));
            }
        }
        var points = counts.Select(n => MedianRun(runs[n])).ToList();

        var report = new ScalingReport(options.Training.Model, options.Mode, options.Compute, options.EmulatedComputeMs, options.Training.Batch, points, repeats);
        report.WriteTable(Terminal.For(output));
        string csv = Path.Combine(outDir, report.FileStem + ".csv");
        string png = Path.Combine(outDir, report.FileStem + ".png");
        string stepsCsv = Path.Combine(outDir, report.StepsFileStem + ".csv");
        string stepsPng = Path.Combine(outDir, report.StepsFileStem + ".png");
        report.WriteCsv(csv);
        report.WritePng(png);
        report.WriteStepsCsv(stepsCsv);
        report.WriteStepsPng(stepsPng);
        output.WriteLine($"wrote {csv} and {png}; each run's step times in {stepsCsv} and {stepsPng}");
        return 0;
    }

    private static string Times(string what, IReadOnlyList<double> times) =>
        times.Count == 0 ? "" : string.Create(CultureInfo.InvariantCulture, $"; chunks' {what} {string.Join(", ", times.Select(ms => ms.ToString("F1", CultureInfo.InvariantCulture)))} ms");

    /// <summary>Turns the final status of a run with batches of <paramref name="batch"/> into its figures, without the start-up of the processes.</summary>
    internal static ScalingPoint ToPoint(int workers, StatusReply status, int batch)
    {
        double steadyMs = status.Version * status.MeanStepMs;
        // NOTE: throughput once warm (the second half of the steps: the first half is every
        // process's JIT warm-up), as throughput benchmarks time their iterations after a warm-up.
        double imagesPerSec = status.Version > 1 && status.SteadyStepMs > 0
            ? (double)status.Samples / status.Version / (status.SteadyStepMs / 1000)
            : status.ImagesPerSec;
        double compute = 0, push = 0, pull = 0, wait = 0, startup = 0;
        long samples = 0;
        foreach (var w in status.Workers)
        {
            var t = w.Time ?? new TimeSplit();
            // NOTE: a worker's first pull also waits until every worker process has started; that wait
            // is what the worker spent beyond the steady-state run (updates × mean step), and is not waiting for the rule.
            double total = t.TotalMs;
            double joinWait = steadyMs > 0 ? Math.Clamp(total - steadyMs, 0, t.WaitMs) : 0;
            startup += joinWait;
            // The split shown is over the timed second half, as the throughput, when the worker reports it.
            if (w.SteadyTime is { Steps: > 0 } steady)
            {
                compute += steady.ComputeMs;
                samples += steady.Samples;
                push += steady.PushMs;
                pull += steady.PullMs;
                wait += steady.WaitMs;
            }
            else
            {
                compute += t.ComputeMs;
                samples += t.Samples;
                push += t.PushMs;
                pull += t.PullMs;
                wait += t.WaitMs - joinWait;
            }
        }
        return new ScalingPoint(workers, imagesPerSec, status.ImagesPerSec, compute, push, pull, wait, startup, status.Version, status.Samples, status.Seconds, status.SteadyStepMs,
            [.. status.StepSeriesMs], Math.Max(1, status.StepSeriesBucket), (double)samples / Math.Max(1, batch));
    }

    /// <summary>
    /// The profile of one forward/backward pass of <paramref name="model"/> at
    /// <paramref name="batch"/> on the real engine (medians, in ms): its duration, when forward
    /// first uses each chunk's weights, when forward ends, and when backward makes each gradient
    /// chunk final. Emulated workers wait and send on this timetable, as real ones do.
    /// </summary>
    private static (double ComputeMs, double ForwardMs, double[] NeededMs, double[] ReadyMs) MeasureCompute(string model, int batch, int threads, int chunkFloats)
    {
        using var team = new ThreadTeam(threads);
        var net = new Sequential(ModelPresets.Resolve(model)) { Team = team };
        net.Initialize(1);
        var trainer = new Trainer(net, Optimizer.Create(new OptimizerOptions { Name = "sgd" }, net.NamedParameters), batch);
        var random = new SeededRandom(2);
        foreach (ref float v in trainer.Images.Span)
        {
            v = random.NextGaussian();
        }
        for (int i = 0; i < batch; i++)
        {
            trainer.Labels[i] = random.NextInt(net.OutputShape[^1]);
        }
        // NOTE: long enough for the JIT's tiering to reach optimized code: at least 40 passes and 1.5 s.
        var warmUp = Stopwatch.StartNew();
        for (int i = 0; i < 40 || warmUp.Elapsed.TotalSeconds < 1.5; i++)
        {
            trainer.ComputeGradient(batch);
        }
        var chunks = ChunkLayout.ForTensors(net.NamedParameters, net.ParameterCount, chunkFloats);
        var times = new double[TimedSteps];
        var forward = new double[TimedSteps];
        var needed = Enumerable.Range(0, chunks.Count).Select(_ => new double[TimedSteps]).ToArray();
        var ready = Enumerable.Range(0, chunks.Count).Select(_ => new double[TimedSteps]).ToArray();
        for (int i = 0; i < times.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            double Now() => Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            int nextNeeded = 0, nextReady = chunks.Count - 1;
            trainer.ComputeGradient(batch, (offset, length) =>
            {
                for (int last = chunks.IndexOf(offset + length - 1); nextNeeded <= last; nextNeeded++)
                {
                    needed[nextNeeded][i] = Now();
                }
            }, _ => forward[i] = Now(), from =>
            {
                for (; nextReady >= 0 && chunks[nextReady].Offset >= from; nextReady--)
                {
                    ready[nextReady][i] = Now();
                }
            });
            times[i] = Now();
            for (; nextReady >= 0; nextReady--)
            {
                ready[nextReady][i] = times[i];
            }
        }
        double computeMs = Median(times);
        return (computeMs, Math.Min(Median(forward), computeMs), [.. needed.Select(r => Math.Min(Median(r), computeMs))], [.. ready.Select(r => Math.Min(Median(r), computeMs))]);
    }

    private static double Median(double[] values)
    {
        Array.Sort(values);
        return values[values.Length / 2];
    }
}
