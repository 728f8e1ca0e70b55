using System.CommandLine;
using System.Globalization;
using Cluster.Training;
using Cluster.Wire;
using Cluster.Worker;

namespace Cluster.Launcher.Commands;

/// <summary><c>cluster worker --server URL</c>: one worker; it learns everything else from the server.</summary>
internal static class WorkerCommand
{
    public static Command Create()
    {
        var server = CommonOptions.Server();
        var name = new Option<string?>("--name") { Description = "name shown in the server's status (default host:pid)" };
        var rank = new Option<int?>("--rank") { Description = "the rank to take, 0 to N-1 (which shard this worker reads, the same from run to run; default the lowest free)" };
        var data = new Option<string?>("--data") { Description = "where this machine keeps the server's data: a directory of the Fashion-MNIST IDX files, or 'embedded' (default: where the server reads it)" };
        var threads = new Option<int>("--threads") { Description = "compute threads (default: the server's --worker-threads)" };
        var slowdown = new Option<double>("--slowdown-ms") { Description = "extra wait per step, to emulate a slow machine" };
        var connectTimeout = new Option<double>("--connect-timeout") { Description = "seconds to keep retrying an unreachable or full server, at the start and when it went away mid-run (a server started again with --resume takes its workers back)", DefaultValueFactory = _ => new WorkerOptions().ConnectTimeoutSeconds };
        var tokenFile = CommonOptions.ClientTokenFile();
        var tlsAuthority = CommonOptions.ClientTlsAuthority();
        var command = new Command("worker", "run one worker of a cluster") { server, name, rank, data, threads, slowdown, connectTimeout, tokenFile, tlsAuthority };
        command.SetAction(async (parse, cancel) =>
        {
            string address = CommonOptions.ServerAddress(parse, server);
            if (parse.GetValue(rank) is < 0)
            {
                throw new InvalidOptionException($"--rank {parse.GetValue(rank)} is not allowed: give 0 to N-1, N the server's --workers plus --backup-workers");
            }
            if (parse.GetValue(threads) < 0 || parse.GetValue(slowdown) < 0 || !(parse.GetValue(connectTimeout) > 0))
            {
                throw new InvalidOptionException("--threads and --slowdown-ms must be 0 or more and --connect-timeout more than 0");
            }
            var overrides = new Dictionary<string, string?>
            {
                [nameof(WorkerOptions.Server)] = address,
                [nameof(WorkerOptions.Threads)] = parse.GetValue(threads).ToString(CultureInfo.InvariantCulture),
                [nameof(WorkerOptions.SlowdownMs)] = parse.GetValue(slowdown).ToString(CultureInfo.InvariantCulture),
                [nameof(WorkerOptions.ConnectTimeoutSeconds)] = parse.GetValue(connectTimeout).ToString(CultureInfo.InvariantCulture),
            };
            if (ClusterToken.Resolve(parse.GetValue(tokenFile)) is string token)
            {
                overrides[nameof(WorkerOptions.Token)] = token;
            }
            if (parse.GetValue(tlsAuthority) is string caFile)
            {
                // Read here so that a bad file is one line and exit 2, before the worker starts.
                ClusterTls.LoadAuthority(caFile).Dispose();
                overrides[nameof(WorkerOptions.TlsAuthority)] = caFile;
            }
            if (parse.GetValue(data) is string d)
            {
                overrides[nameof(WorkerOptions.Data)] = d;
            }
            if (parse.GetValue(rank) is int r)
            {
                overrides[nameof(WorkerOptions.Rank)] = r.ToString(CultureInfo.InvariantCulture);
            }
            if (parse.GetValue(name) is string n)
            {
                overrides[nameof(WorkerOptions.Name)] = n;
            }
            return await WorkerHost.RunAsync(overrides, cancel).ConfigureAwait(false);
        });
        return command;
    }
}
