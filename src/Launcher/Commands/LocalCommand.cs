using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Cluster.ParameterServer;
using Cluster.Training;
using Cluster.Wire;
using Cluster.Worker;
using Grpc.Core;

namespace Cluster.Launcher.Commands;

/// <summary>
/// <c>cluster local</c>: a whole cluster on this machine — one parameter-server process and N
/// worker processes talking gRPC over loopback, the same programs that run on separate machines —
/// with one combined live view, and every process stopped at the end or on Ctrl+C.
/// </summary>
internal static class LocalCommand
{
    public static Command Create(TextWriter output)
    {
        var flags = new ClusterFlags();
        var port = new Option<int>("--port") { Description = "server port on 127.0.0.1 (0: any free port)", DefaultValueFactory = _ => 0 };
        var slow = new Option<string[]>("--slow-worker") { Description = "RANK:MS — make worker RANK wait MS extra per step (a straggler)", AllowMultipleArgumentsPerToken = true };
        var logs = new Option<string?>("--log-dir") { Description = "where each process's log goes (default: a new temporary directory)" };
        var restarts = new Option<int>("--max-restarts") { Description = "start a process of the cluster that dies again, up to this many times in all: a worker joins in the dead one's place, a server resumes from its --save checkpoint", DefaultValueFactory = _ => 0 };
        var command = new Command("local", "run a parameter server and N workers as processes on this machine") { port, slow, logs, restarts };
        flags.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            var options = flags.Bind(parse) with { Port = parse.GetValue(port), Host = "127.0.0.1" };
            var slowWorkers = ParseSlowWorkers(parse.GetValue(slow) ?? [], options.ExpectedWorkers);
            int maxRestarts = parse.GetValue(restarts);
            if (maxRestarts is < 0 or > 100)
            {
                throw new InvalidOptionException($"--max-restarts {maxRestarts} is not allowed: use 0 to 100");
            }
            var result = await RunAsync(options, slowWorkers, parse.GetValue(logs), output, live: Terminal.IsInteractive(output), quiet: false, cancel, maxRestarts).ConfigureAwait(false);
            return result.ExitCode;
        });
        return command;
    }

    private static Dictionary<int, double> ParseSlowWorkers(string[] values, int workers)
    {
        var result = new Dictionary<int, double>();
        foreach (string v in values)
        {
            string[] parts = v.Split(':');
            if (parts.Length != 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out int rank) || rank < 0 || rank >= workers
                || !double.TryParse(parts[1], CultureInfo.InvariantCulture, out double ms) || ms < 0)
            {
                throw new InvalidOptionException($"--slow-worker '{v}' is not RANK:MS with RANK in 0..{workers - 1} and MS ≥ 0");
            }
            result[rank] = ms;
        }
        return result;
    }

    /// <summary>What a local run produced.</summary>
    public sealed record Result(int ExitCode, StatusReply? Status, string LogDirectory)
    {
        /// <summary>The process ids of the server and the workers that were started.</summary>
        public IReadOnlyList<int> ProcessIds { get; init; } = [];
    }

    /// <summary>Runs the cluster to the end; used by <c>local</c> and by <c>bench scaling</c>.</summary>
    public static async Task<Result> RunAsync(ServerOptions options, IReadOnlyDictionary<int, double> slowWorkers, string? logDirectory, TextWriter output, bool live, bool quiet, CancellationToken cancel, int maxRestarts = 0)
    {
        options.Validate();
        if (options.Training.Data is string d && d != "embedded" && !Directory.Exists(d))
        {
            throw new InvalidOptionException($"--data '{d}': the directory does not exist");
        }
        if (options.Port == 0)
        {
            options = options with { Port = FreePort() };
        }
        if (options.PrometheusPort == 0)
        {
            options = options with { PrometheusPort = FreePort() };
        }
        string logs = logDirectory ?? Path.Combine(Path.GetTempPath(), $"cluster-local-{Environment.ProcessId}-{DateTime.UtcNow:HHmmss}");
        Directory.CreateDirectory(logs);
        string address = $"http://127.0.0.1:{options.Port}";
        // A token of this run's own: a worker of another run that finds this port is refused.
        string token = ClusterToken.Generate();
        using var children = new ChildProcesses(logs, new Dictionary<string, string> { [ClusterToken.EnvironmentVariable] = token });
        Result Done(int code, StatusReply? status) => new(code, status, logs) { ProcessIds = [.. children.All.Select(c => c.Process.Id)] };
        var server = children.Start("server", ["server", .. ClusterFlags.ToArguments(options), "--threads", "1"]);
        using var client = new ParameterClient(address, token: token);
        if (!await WaitForServerAsync(client, server, cancel).ConfigureAwait(false))
        {
            if (cancel.IsCancellationRequested)
            {
                return Done(130, null);
            }
            string tail = children.Tail("server");
            output.WriteLine($"the parameter server did not start (exit code {(server.HasExited ? server.ExitCode : -1)}); its log {Path.Combine(logs, "server.log")} ends:");
            output.WriteLine(tail);
            return Done(server.HasExited && server.ExitCode == Cli.UsageError ? Cli.UsageError : 1, null);
        }
        var restarts = new ProcessRestarts(children, client, address, maxRestarts, output) { Server = server };
        for (int i = 0; i < options.ExpectedWorkers; i++)
        {
            restarts.StartWorker(i, slowWorkers.TryGetValue(i, out double ms) ? ["--slowdown-ms", ms.ToString("R", CultureInfo.InvariantCulture)] : []);
        }
        if (!quiet)
        {
            output.WriteLine($"local cluster: server {address}, {options.ExpectedWorkers} worker process(es), mode {options.Mode}{(options.Training.Resume is null ? "" : $", resuming {options.Training.Resume}")}"
                + (options.PrometheusPort is int metricsPort ? $", metrics for Prometheus at http://127.0.0.1:{metricsPort}/metrics" : "") + $"; logs in {logs}");
        }
        var view = new ClusterView(output, options, live && !quiet, quiet);
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var watch = restarts.WatchWorkersAsync(watching.Token);
        StatusReply? last = null;
        try
        {
            while (true)
            {
                last = await view.FollowAsync(client, server, cancel).ConfigureAwait(false);
                if (last is { Finished: true } || !Crashed(server) || RestartServer(options, children, restarts, server) is not { } again)
                {
                    break;
                }
                server = again;
                restarts.Server = server;
                if (!await WaitForServerAsync(client, server, cancel).ConfigureAwait(false))
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            output.WriteLine("stopping: every process of the cluster is being stopped");
            return Done(130, last);
        }
        finally
        {
            await watching.CancelAsync().ConfigureAwait(false);
            await watch.ConfigureAwait(false);
        }
        // NOTE: workers whose server died wait --connect-timeout for it to come back; when it will
        // not (no restart left), there is nothing to wait for: they are stopped with the launcher.
        bool serverLost = Crashed(server);
        bool exited = await children.WaitAllAsync(TimeSpan.FromSeconds(serverLost ? 1 : 30)).ConfigureAwait(false);
        foreach (var (dead, next) in restarts.ReplacedBy)
        {
            output.WriteLine($"{dead} died and {next} took its place; {dead}'s log ends:");
            output.WriteLine(children.Tail(dead, 3));
        }
        // A process that died and was replaced does not fail the run: its replacement carried on.
        var failed = children.All.Where(c => (!c.Process.HasExited || c.Process.ExitCode != 0) && !restarts.ReplacedBy.ContainsKey(c.Name)
            && !(serverLost && !c.Process.HasExited)).ToList();
        if (serverLost)
        {
            output.WriteLine("the parameter server died and was not started again (see --max-restarts); its workers are stopped");
        }
        foreach (var (name, process) in failed)
        {
            output.WriteLine($"{name} {(process.HasExited ? $"exited with code {process.ExitCode}" : "did not exit and was stopped")}; its log ends:");
            output.WriteLine(children.Tail(name));
        }
        int code = exited && failed.Count == 0 && last is not null ? 0 : 1;
        if (server.HasExited && server.ExitCode == Cli.UsageError)
        {
            code = Cli.UsageError;
        }
        if (code == 0 && !quiet && options.Training.Save is string save)
        {
            output.WriteLine($"saved {Path.GetFullPath(save)}");
        }
        return Done(code, last);
    }

    /// <summary>Whether the server was killed or crashed (a signal's exit code), not stopped or failed on its own.</summary>
    private static bool Crashed(System.Diagnostics.Process server) =>
        server.HasExited && server.ExitCode > 128 && server.ExitCode != 130;

    /// <summary>
    /// Starts the server again after it crashed, from its checkpoint when it has written one (its
    /// workers wait for it and join it), or returns null when every restart is used.
    /// </summary>
    private static System.Diagnostics.Process? RestartServer(ServerOptions options, ChildProcesses children, ProcessRestarts restarts, System.Diagnostics.Process dead)
    {
        string deadName = children.All.Last(c => c.Process == dead).Name;
        string? checkpoint = options.Training.Save is string save && File.Exists(save) ? save : options.Training.Resume;
        string how = checkpoint is null ? ", from the start: no checkpoint written yet" : $", resuming {checkpoint} (epoch {EpochOf(checkpoint)})";
        if (restarts.TryTake(deadName, dead.ExitCode, how) is not string name)
        {
            return null;
        }
        var again = checkpoint is null ? options : options with { Training = options.Training with { Resume = checkpoint, Init = null } };
        return children.Start(name, ["server", .. ClusterFlags.ToArguments(again), "--threads", "1"]);
    }

    /// <summary>The epoch a checkpoint holds, as its metadata says, or "?" when it cannot be read (the restarted server then says why).</summary>
    private static string EpochOf(string checkpoint)
    {
        try
        {
            return Checkpoints.Checkpoint.ReadMetadata(checkpoint).GetValueOrDefault(Checkpoints.NormalizationMetadata.EpochsKey, "?");
        }
        catch (Checkpoints.CheckpointException)
        {
            return "?";
        }
    }

    private static async Task<bool> WaitForServerAsync(ParameterClient client, System.Diagnostics.Process server, CancellationToken cancel)
    {
        for (int i = 0; i < 600 && !cancel.IsCancellationRequested; i++)
        {
            if (server.HasExited)
            {
                return false;
            }
            try
            {
                await client.Client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: cancel).ConfigureAwait(false);
                return true;
            }
            catch (RpcException)
            {
                await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
            }
        }
        return false;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
