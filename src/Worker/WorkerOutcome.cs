namespace Cluster.Worker;

/// <summary>Raised inside a step when the pull it waited for says the run is over.</summary>
internal sealed class RunFinishedException : Exception;

/// <summary>How a worker's run ended, for the process exit code.</summary>
public sealed class WorkerOutcome
{
    /// <summary>0 when the run finished, 1 when the server could not be reached or failed.</summary>
    public int ExitCode { get; set; } = 1;
}
