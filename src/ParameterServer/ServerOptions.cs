using Cluster.ParameterServer.Rules;
using Cluster.Training;
using Cluster.Wire;

namespace Cluster.ParameterServer;

/// <summary>Everything the parameter server is started with. Defaults are stated once, here.</summary>
public sealed record ServerOptions
{
    /// <summary>The training settings every worker receives (model, batch per worker, epochs, optimizer...).</summary>
    public TrainingOptions Training { get; init; } = new();

    /// <summary>TCP port on which the server listens (HTTP/2 without TLS). 0 picks a free one. Default 5000.</summary>
    public int Port { get; init; } = 5000;

    /// <summary>Address to bind: 127.0.0.1 for a local cluster, 0.0.0.0 for other machines. Default 0.0.0.0.</summary>
    public string Host { get; init; } = "0.0.0.0";

    /// <summary>Workers whose gradients make a step (N); at least 1. Default 2.</summary>
    public int Workers { get; init; } = 2;

    /// <summary>Extra workers in sync mode whose late gradients are dropped (b); ≥ 0. Default 0.</summary>
    public int BackupWorkers { get; init; }

    /// <summary>Consistency rule: sync, async or ssp:S. Default sync.</summary>
    public string Mode { get; init; } = "sync";

    /// <summary>Floats per chunk on the wire: 65,536 (256 KiB), small enough that a worker sends most of a model's gradient during backward.</summary>
    public int ChunkFloats { get; init; } = ParameterStore.DefaultChunkFloats;

    /// <summary>Exchange streams (connections) each worker spreads a push over; 1 to 8. Default 1.</summary>
    public int PushLanes { get; init; } = 1;

    /// <summary>real: workers run the engine; emulated: they wait <see cref="EmulatedComputeMs"/> instead. Default real.</summary>
    public string Compute { get; init; } = "real";

    /// <summary>With emulated compute, the wait that replaces each forward/backward pass, in ms.</summary>
    public double EmulatedComputeMs { get; init; }

    /// <summary>
    /// With emulated compute, when each gradient chunk (index order) becomes final within the wait,
    /// in ms: the workers release them then, as the real backward does. Empty: all at the end.
    /// </summary>
    public IReadOnlyList<double> EmulatedChunkReadyMs { get; init; } = [];

    /// <summary>With emulated compute, when forward first uses each chunk's weights, in ms. Empty: all at the start.</summary>
    public IReadOnlyList<double> EmulatedChunkNeededMs { get; init; } = [];

    /// <summary>With emulated compute, when forward ends (the loss is known), in ms.</summary>
    public double EmulatedForwardMs { get; init; }

    /// <summary>Evaluate the test set after every epoch (default), or only after the last one (throughput benchmarks).</summary>
    public bool EvaluateEachEpoch { get; init; } = true;

    /// <summary>Stop when the test accuracy first reaches this fraction (time-to-accuracy), or null.</summary>
    public double? TargetAccuracy { get; init; }

    /// <summary>Threads each worker computes with. Default 1 (a local cluster shares the cores).</summary>
    public int WorkerThreads { get; init; } = 1;

    /// <summary>Threads the server evaluates the test set with. Default 1.</summary>
    public int EvaluationThreads { get; init; } = 1;

    /// <summary>A worker not heard from for this long (no pull, push or heartbeat) is treated as gone, in seconds. Default 10.</summary>
    public double WorkerTimeoutSeconds { get; init; } = 10;

    /// <summary>
    /// Port on which the server also serves its metrics for Prometheus (HTTP/1.1, <c>/metrics</c>,
    /// on <see cref="Host"/>), or null for none. 0 picks a free one.
    /// </summary>
    public int? PrometheusPort { get; init; }

    /// <summary>Total workers expected: N + b.</summary>
    public int ExpectedWorkers => Workers + BackupWorkers;

    /// <summary>Parses a comma-separated list of times in ms given to <paramref name="flag"/>; null or empty gives none.</summary>
    public static IReadOnlyList<double> ParseMilliseconds(string flag, string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return [];
        }
        var values = new List<double>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!double.TryParse(part, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double ms) || !double.IsFinite(ms))
            {
                throw new InvalidOptionException($"{flag} '{text}': '{part}' is not a time in ms; use comma-separated numbers, e.g. 12.5,3.1");
            }
            values.Add(ms);
        }
        return values;
    }

    /// <summary>Throws <see cref="InvalidOptionException"/> when an emulated-compute timetable does not give one time per chunk of <paramref name="chunks"/>.</summary>
    public void CheckEmulatedProfile(ChunkLayout chunks)
    {
        foreach (var (flag, times) in new[] { ("--emulated-chunk-ready-ms", EmulatedChunkReadyMs), ("--emulated-chunk-needed-ms", EmulatedChunkNeededMs) })
        {
            if (times.Count is > 0 and var given && given != chunks.Count)
            {
                throw new InvalidOptionException($"{flag} gives {given} times, but {Training.Model} is sent in {chunks.Count} chunks of at most {ChunkFloats} floats: give one per chunk");
            }
        }
    }

    /// <summary>Throws <see cref="InvalidOptionException"/> for the first setting out of range; returns the parsed mode.</summary>
    public ConsistencyMode Validate()
    {
        Training.Validate();
        if (Workers < 1 || Workers > 256)
        {
            throw new InvalidOptionException($"--workers {Workers} is not allowed: use 1 to 256");
        }
        if (BackupWorkers < 0 || BackupWorkers > 256)
        {
            throw new InvalidOptionException($"--backup-workers {BackupWorkers} is not allowed: use 0 to 256");
        }
        if (Port < 0 || Port > 65535)
        {
            throw new InvalidOptionException($"--port {Port} is not allowed: use 0 to 65535");
        }
        if (PrometheusPort is int metricsPort && (metricsPort < 0 || metricsPort > 65535 || (metricsPort == Port && Port != 0)))
        {
            throw new InvalidOptionException($"--prometheus-port {metricsPort} is not allowed: use 0 to 65535, other than --port {Port}");
        }
        if (ChunkFloats < 1024 || ChunkFloats > 1 << 22)
        {
            throw new InvalidOptionException($"--chunk-floats {ChunkFloats} is not allowed: use 1,024 to 4,194,304");
        }
        if (PushLanes is < 1 or > 8)
        {
            throw new InvalidOptionException($"--push-lanes {PushLanes} is not allowed: use 1 to 8");
        }
        if (Compute is not ("real" or "emulated"))
        {
            throw new InvalidOptionException($"--compute '{Compute}' is not known: use real or emulated");
        }
        if (Compute == "emulated" && !(EmulatedComputeMs >= 0))
        {
            throw new InvalidOptionException($"--emulated-compute-ms {EmulatedComputeMs} is not allowed: use 0 or more");
        }
        foreach (var (flag, times) in new[] { ("--emulated-chunk-ready-ms", EmulatedChunkReadyMs), ("--emulated-chunk-needed-ms", EmulatedChunkNeededMs), ("--emulated-forward-ms", [EmulatedForwardMs]) })
        {
            foreach (double ms in times)
            {
                if (!(ms >= 0 && ms <= EmulatedComputeMs))
                {
                    throw new InvalidOptionException($"{flag}: {ms} is not allowed: each time must be from 0 to --emulated-compute-ms ({EmulatedComputeMs})");
                }
            }
        }
        if (TargetAccuracy is double t && !(t > 0 && t <= 1))
        {
            throw new InvalidOptionException($"--target-accuracy {t} is not allowed: use a fraction in (0, 1], e.g. 0.9");
        }
        if (Training.Patience is int patience && !EvaluateEachEpoch)
        {
            throw new InvalidOptionException($"--patience {patience} needs --evaluate epoch: early stopping decides after each epoch's evaluation");
        }
        if (WorkerThreads < 1)
        {
            throw new InvalidOptionException($"--worker-threads {WorkerThreads} is not allowed: use 1 or more");
        }
        if (!(WorkerTimeoutSeconds is >= 2 and <= 3600))
        {
            throw new InvalidOptionException($"--worker-timeout {WorkerTimeoutSeconds} is not allowed: use 2 to 3600 seconds (workers send a heartbeat every second)");
        }
        ConsistencyMode mode;
        try
        {
            mode = ConsistencyMode.Parse(Mode);
        }
        catch (ArgumentException e)
        {
            throw new InvalidOptionException(e.Message);
        }
        if (BackupWorkers > 0 && mode.Kind != "sync")
        {
            throw new InvalidOptionException($"--backup-workers {BackupWorkers} needs --mode sync, not {Mode}");
        }
        return mode;
    }
}
