using System.Diagnostics;
using System.Globalization;
using Cluster.Wire;
using Cluster.Worker;
using Grpc.Core;

namespace Cluster.Launcher.Commands;

/// <summary>
/// <c>cluster local --max-restarts N</c>: a process of the cluster that dies while the run goes on
/// is started again, up to N times in all. A worker joins in the dead one's place (its shard, from
/// the next step); the launcher saw the process end, so it tells the server at once that the worker
/// has left, and the run does not wait out <c>--worker-timeout</c>. The server is started again by
/// the launcher (<see cref="TryTake"/>), from its checkpoint when it has written one, and the
/// workers, which wait for it to come back, join it.
/// </summary>
internal sealed class ProcessRestarts(ChildProcesses children, ParameterClient client, string address, int limit, TextWriter output)
{
    private readonly Dictionary<string, string> _replacedBy = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _restartsOfSlot = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _rankOfSlot = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>
    /// Starts worker <paramref name="rank"/> (named worker-RANK) with the rank asked for, so that it
    /// reads the same shard in every run and a process started in its place reads it too.
    /// </summary>
    public void StartWorker(int rank, IReadOnlyList<string> extraArguments)
    {
        string name = $"worker-{rank}";
        lock (_lock)
        {
            _rankOfSlot[name] = rank;
        }
        children.Start(name, [.. WorkerArguments(name, rank), .. extraArguments]);
    }

    private string[] WorkerArguments(string name, int rank) =>
        ["worker", "--server", address, "--name", name, "--rank", rank.ToString(CultureInfo.InvariantCulture)];

    /// <summary>The server process of the run now.</summary>
    public Process? Server { get; set; }

    /// <summary>Each dead process's name and the name of the process started in its place.</summary>
    public IReadOnlyDictionary<string, string> ReplacedBy
    {
        get
        {
            lock (_lock)
            {
                return new Dictionary<string, string>(_replacedBy);
            }
        }
    }

    /// <summary>
    /// Takes one restart for <paramref name="dead"/> and returns the name its successor gets
    /// (<c>server.1</c>, <c>worker-1.2</c>), or null when every restart is used.
    /// </summary>
    public string? TryTake(string dead, int exitCode, string how)
    {
        lock (_lock)
        {
            if (_replacedBy.Count >= limit || _replacedBy.ContainsKey(dead))
            {
                return null;
            }
            string slot = Slot(dead);
            int count = _restartsOfSlot.GetValueOrDefault(slot) + 1;
            _restartsOfSlot[slot] = count;
            string next = $"{slot}.{count}";
            _replacedBy[dead] = next;
            output.WriteLine($"{dead} died (exit code {exitCode}); {next} starts in its place{how} (restart {_replacedBy.Count} of {limit})");
            return next;
        }
    }

    /// <summary>Watches the workers until every restart is used or <paramref name="cancel"/> fires.</summary>
    public async Task WatchWorkersAsync(CancellationToken cancel)
    {
        try
        {
            while (ReplacedBy.Count < limit)
            {
                foreach (var (name, process) in children.All)
                {
                    if (IsDeadWorker(name, process) && Server is { HasExited: false } && !await RestartWorkerAsync(name, process.ExitCode, cancel).ConfigureAwait(false))
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
        name.StartsWith("worker-", StringComparison.Ordinal) && process.HasExited && process.ExitCode != 0 && !ReplacedBy.ContainsKey(name);

    /// <summary>Starts a worker in the place of <paramref name="name"/>; false when the run is over (nothing to restart for).</summary>
    private async Task<bool> RestartWorkerAsync(string name, int exitCode, CancellationToken cancel)
    {
        StatusReply status;
        try
        {
            status = await client.Client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancel).ConfigureAwait(false);
        }
        catch (RpcException)
        {
            // The server is going away (or being started again): look again later.
            return true;
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
        if (TryTake(name, exitCode, "") is string next)
        {
            int rank;
            lock (_lock)
            {
                rank = _rankOfSlot[Slot(name)];
            }
            children.Start(next, WorkerArguments(next, rank));
        }
        return true;
    }

    /// <summary>The place a process holds: worker-1 for worker-1 and for worker-1.2, the second started in its place.</summary>
    private static string Slot(string name) => name.Split('.')[0];
}
