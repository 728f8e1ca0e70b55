using Microsoft.Extensions.Hosting;

namespace Cluster.ParameterServer;

/// <summary>
/// Checks every second for workers that stopped talking (crashed, killed, cut off) and lets the
/// run go on without them: the answer to the hang every synchronous system has when a worker dies;
/// and for workers that straggle, which it names in the log.
/// </summary>
internal sealed class LivenessMonitor(TrainingCoordinator run, ServerOptions options) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false) && !run.Finished.IsCompleted)
            {
                run.DropSilentWorkers(options.WorkerTimeoutSeconds * 1000);
                run.ReportStragglers();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
