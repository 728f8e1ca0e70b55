using System.CommandLine;
using System.Globalization;
using Cluster.ParameterServer;
using Cluster.Training;

namespace Cluster.Launcher.Commands;

/// <summary>The cluster flags shared by <c>server</c>, <c>local</c> and <c>bench scaling</c>, bound onto <see cref="ServerOptions"/>.</summary>
internal sealed class ClusterFlags
{
    private static readonly ServerOptions Defaults = new();

    public TrainingFlags Training { get; } = new();

    public Option<int> Workers { get; } = new("--workers") { Description = "workers whose gradients make a step (N)", DefaultValueFactory = _ => Defaults.Workers };

    public Option<int> BackupWorkers { get; } = new("--backup-workers") { Description = "extra workers in sync mode; the first N gradients of a step are used", DefaultValueFactory = _ => Defaults.BackupWorkers };

    public Option<string> Mode { get; } = new("--mode") { Description = "sync, async or ssp:S (bounded staleness S)", DefaultValueFactory = _ => Defaults.Mode };

    public Option<int> ChunkFloats { get; } = new("--chunk-floats") { Description = "floats per chunk on the wire", DefaultValueFactory = _ => Defaults.ChunkFloats };

    public Option<int> PushLanes { get; } = new("--push-lanes") { Description = "connections each worker spreads a push over (for workers with cores and a link of their own)", DefaultValueFactory = _ => Defaults.PushLanes };

    public Option<string> Compute { get; } = new("--compute") { Description = "real, or emulated (workers wait --emulated-compute-ms instead of computing)", DefaultValueFactory = _ => Defaults.Compute };

    public Option<double> EmulatedComputeMs { get; } = new("--emulated-compute-ms") { Description = "the wait that replaces forward/backward with --compute emulated" };

    public Option<string?> EmulatedChunkReadyMs { get; } = new("--emulated-chunk-ready-ms") { Description = "with --compute emulated: when each gradient chunk becomes final within the pass, in ms, chunk 0 first (bench scaling measures it); by default every chunk at the end" };

    public Option<string?> EmulatedChunkNeededMs { get; } = new("--emulated-chunk-needed-ms") { Description = "with --compute emulated: when forward first uses each chunk's weights, in ms, chunk 0 first (bench scaling measures it); by default all at the start" };

    public Option<double> EmulatedForwardMs { get; } = new("--emulated-forward-ms") { Description = "with --compute emulated: when forward ends within the pass, in ms (bench scaling measures it)" };

    public Option<string> Evaluate { get; } = new("--evaluate") { Description = "when the server evaluates the test set: epoch (after each) or end (after the last only)", DefaultValueFactory = _ => "epoch" };

    public Option<double?> TargetAccuracy { get; } = new("--target-accuracy") { Description = "stop when the test accuracy first reaches this fraction, e.g. 0.9" };

    public Option<string?> Save { get; } = new("--save") { Description = "write the weights the server evaluated last here, a safetensors checkpoint replaced after each evaluated epoch with the optimizer's state (the last one ends the run; --resume goes on from it)" };

    public Option<double> WorkerTimeout { get; } = new("--worker-timeout") { Description = "seconds without a word from a worker (heartbeats go every second) before it is treated as gone and the run goes on without it; another worker may then join in its place", DefaultValueFactory = _ => Defaults.WorkerTimeoutSeconds };

    public Option<int?> PrometheusPort { get; } = new("--prometheus-port") { Description = "also serve the run's metrics for Prometheus (OpenTelemetry) at http://HOST:PORT/metrics: global step, step times, staleness, and per worker its rate, time split and lateness (0: any free port)" };

    public Option<int> WorkerThreads { get; } = new("--worker-threads") { Description = "compute threads per worker", DefaultValueFactory = _ => Defaults.WorkerThreads };

    public void AddTo(Command command)
    {
        Training.AddTo(command, withThreads: false);
        command.Options.Add(Workers);
        command.Options.Add(BackupWorkers);
        command.Options.Add(Mode);
        command.Options.Add(ChunkFloats);
        command.Options.Add(PushLanes);
        command.Options.Add(Compute);
        command.Options.Add(EmulatedComputeMs);
        command.Options.Add(EmulatedChunkReadyMs);
        command.Options.Add(EmulatedChunkNeededMs);
        command.Options.Add(EmulatedForwardMs);
        command.Options.Add(Evaluate);
        command.Options.Add(TargetAccuracy);
        command.Options.Add(Save);
        command.Options.Add(WorkerThreads);
        command.Options.Add(WorkerTimeout);
        command.Options.Add(PrometheusPort);
    }

    public ServerOptions Bind(ParseResult parse) => new()
    {
        Training = Training.Bind(parse) with { Save = parse.GetValue(Save) },
        Workers = parse.GetValue(Workers),
        BackupWorkers = parse.GetValue(BackupWorkers),
        Mode = parse.GetValue(Mode)!,
        ChunkFloats = parse.GetValue(ChunkFloats),
        PushLanes = parse.GetValue(PushLanes),
        Compute = parse.GetValue(Compute)!,
        EmulatedComputeMs = parse.GetValue(EmulatedComputeMs),
        EmulatedChunkReadyMs = ServerOptions.ParseMilliseconds("--emulated-chunk-ready-ms", parse.GetValue(EmulatedChunkReadyMs)),
        EmulatedChunkNeededMs = ServerOptions.ParseMilliseconds("--emulated-chunk-needed-ms", parse.GetValue(EmulatedChunkNeededMs)),
        EmulatedForwardMs = parse.GetValue(EmulatedForwardMs),
        // NOTE: commands that do not offer --evaluate (bench scaling) get the default.
        EvaluateEachEpoch = (parse.CommandResult.Command.Options.Contains(Evaluate) ? parse.GetValue(Evaluate) : "epoch") switch
        {
            "epoch" => true,
            "end" => false,
            var other => throw new InvalidOptionException($"--evaluate '{other}' is not known: use epoch or end"),
        },
        TargetAccuracy = parse.GetValue(TargetAccuracy),
        WorkerThreads = parse.GetValue(WorkerThreads),
        WorkerTimeoutSeconds = parse.CommandResult.Command.Options.Contains(WorkerTimeout) ? parse.GetValue(WorkerTimeout) : Defaults.WorkerTimeoutSeconds,
        PrometheusPort = parse.GetValue(PrometheusPort),
    };

    /// <summary>The same settings as arguments for a <c>cluster server</c> process.</summary>
    public static IEnumerable<string> ToArguments(ServerOptions o)
    {
        foreach (string a in TrainingFlags.ToArguments(o.Training))
        {
            yield return a;
        }
        string[] rest =
        [
            "--workers", o.Workers.ToString(CultureInfo.InvariantCulture),
            "--backup-workers", o.BackupWorkers.ToString(CultureInfo.InvariantCulture),
            "--mode", o.Mode,
            "--chunk-floats", o.ChunkFloats.ToString(CultureInfo.InvariantCulture),
            "--push-lanes", o.PushLanes.ToString(CultureInfo.InvariantCulture),
            "--compute", o.Compute,
            "--emulated-compute-ms", o.EmulatedComputeMs.ToString("R", CultureInfo.InvariantCulture),
            "--worker-threads", o.WorkerThreads.ToString(CultureInfo.InvariantCulture),
            "--worker-timeout", o.WorkerTimeoutSeconds.ToString("R", CultureInfo.InvariantCulture),
            "--host", o.Host,
            "--port", o.Port.ToString(CultureInfo.InvariantCulture),
        ];
        foreach (string a in rest)
        {
            yield return a;
        }
        if (!o.EvaluateEachEpoch)
        {
            yield return "--evaluate";
            yield return "end";
        }
        foreach (var (flag, times) in new[] { ("--emulated-chunk-ready-ms", o.EmulatedChunkReadyMs), ("--emulated-chunk-needed-ms", o.EmulatedChunkNeededMs) })
        {
            if (times.Count > 0)
            {
                yield return flag;
                yield return string.Join(",", times.Select(ms => ms.ToString("R", CultureInfo.InvariantCulture)));
            }
        }
        yield return "--emulated-forward-ms";
        yield return o.EmulatedForwardMs.ToString("R", CultureInfo.InvariantCulture);
        if (o.TargetAccuracy is double t)
        {
            yield return "--target-accuracy";
            yield return t.ToString("R", CultureInfo.InvariantCulture);
        }
        if (o.PrometheusPort is int metricsPort)
        {
            yield return "--prometheus-port";
            yield return metricsPort.ToString(CultureInfo.InvariantCulture);
        }
        if (o.Training.Metrics is not null)
        {
            yield return "--metrics";
            yield return o.Training.Metrics;
        }
        if (o.Training.Save is not null)
        {
            // The server may run in another directory: the path as this process sees it.
            yield return "--save";
            yield return Path.GetFullPath(o.Training.Save);
        }
    }
}
