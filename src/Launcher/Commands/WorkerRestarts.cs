using System.Diagnostics;
using Cluster.Wire;
using Cluster.Worker;
using Grpc.Core;

namespace Cluster.Launcher.Commands;

/// <summary>
/// <c>cluster local --max-restarts N</c>: a worker process that dies while the run goes on is
/// started again, up to N times in all, and joins in the dead one's place (its shard, from the next
/// step). The launcher saw the process end, so it tells the server at once that the worker has
/// left: the run does not wait out <c>--worker-timeout</c> first.
/// </summary>
internal sealed class WorkerRestarts(ChildProcesses children, ParameterClient client, string address, int limit, TextWriter output)
{
    private readonly Dictionary<string, string> _replacedBy = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _restartsOfSlot = new(StringComparer.Ordinal);

    /// <summary>Each dead worker's name and the name of the process started in its place.</summary>
    public IReadOnlyDictionary<string, string> ReplacedBy => _replacedBy;

    /// <summary>Watches the workers until the server exits, the run is over, every restart is used or <paramref name="cancel"/> fires.</summary>
    public async Task WatchAsync(Process server, CancellationToken cancel)
    {
        try
        {
            while (_replacedBy.Count < limit && !server.HasExited)
            {
                foreach (var (name, process) in children.All)
                {
                    if (_replacedBy.Count < limit && IsDeadWorker(name, process) && !await RestartAsync(name, process.ExitCode, cancel).ConfigureAwait(false))
                    {
                        return;
                    }
                }
                await Task.Delay(250, cancel).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private bool IsDeadWorker(string name, Process process) =>
        name.StartsWith("worker-", StringComparison.Ordinal) && process.HasExited && process.ExitCode != 0 && !_replacedBy.ContainsKey(name);

    /// <summary>Starts a worker in the place of <paramref name="name"/>; false when the run is over (nothing to restart for).</summary>
    private async Task<bool> RestartAsync(string name, int exitCode, CancellationToken cancel)
    {
        StatusReply status;
        try
        {
            status = await client.Client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancel).ConfigureAwait(false);
        }
        catch (RpcException)
        {
            // The server is going away: so is the run.
            return false;
        }
        if (status.Finished)
        {
            return false;
        }
        if (status.Workers.LastOrDefault(w => w.Name == name) is { Active: true } gone)
        {
            try
            {
                await client.Client.LeaveAsync(new LeaveRequest { WorkerId = gone.WorkerId }, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancel).ConfigureAwait(false);
            }
            catch (RpcException)
            {
                // Already let go (its streams broke first), or the server is busy: it drops the worker after --worker-timeout anyway.
            }
        }
        string slot = name.Split('.')[0];
        int count = _restartsOfSlot.GetValueOrDefault(slot) + 1;
        _restartsOfSlot[slot] = count;
        string next = $"{slot}.{count}";
        children.Start(next, ["worker", "--server", address, "--name", next]);
        _replacedBy[name] = next;
        output.WriteLine($"{name} died (exit code {exitCode}); {next} starts in its place (restart {_replacedBy.Count} of {limit})");
        return true;
    }
}
