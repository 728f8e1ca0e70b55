using System.CommandLine;
using System.Globalization;
using Cluster.Wire;
using Cluster.Worker;
using Grpc.Core;
using Spectre.Console;

namespace Cluster.Launcher.Commands;

/// <summary>
/// <c>cluster status --server URL</c>: what a running parameter server records — global step,
/// images/s overall and per worker, each worker's time split and how late its gradients come (a
/// straggler stands out), the staleness histogram, pushes dropped or refused, and the test
/// accuracy after each epoch — once, or followed live with <c>--watch</c> until the run ends.
/// For clusters started with <c>cluster server</c>, whose workers run elsewhere.
/// </summary>
internal static class StatusCommand
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(5);

    public static Command Create(TextWriter output, TextWriter error)
    {
        var server = CommonOptions.Server();
        var watch = new Option<bool>("--watch") { Description = "follow the run, refreshing twice a second, until it ends" };
        var tokenFile = CommonOptions.ClientTokenFile();
        var tlsAuthority = CommonOptions.ClientTlsAuthority();
        var command = new Command("status", "show what a running parameter server records") { server, watch, tokenFile, tlsAuthority };
        command.SetAction(async (parse, cancel) =>
        {
            string address = CommonOptions.ServerAddress(parse, server);
            using var authority = parse.GetValue(tlsAuthority) is string caFile ? ClusterTls.LoadAuthority(caFile) : null;
            using var client = new ParameterClient(address, token: ClusterToken.Resolve(parse.GetValue(tokenFile)), authority: authority);
            try
            {
                return parse.GetValue(watch) ? await WatchAsync(client, address, output, error, cancel).ConfigureAwait(false) : await ShowAsync(client, output, cancel).ConfigureAwait(false);
            }
            catch (Exception e) when (cancel.IsCancellationRequested && e is OperationCanceledException or RpcException)
            {
                // Ctrl+C while watching: the run goes on; only the view stops. (gRPC reports a call
                // cancelled under it as an RpcException.)
                return 130;
            }
            catch (RpcException e) when (!cancel.IsCancellationRequested)
            {
                error.WriteLine(e.StatusCode == StatusCode.Unauthenticated
                    ? $"error: the parameter server at {address} refused the status request: {e.Status.Detail} (set {ClusterToken.EnvironmentVariable} or --token-file)"
                    : $"error: cannot reach the parameter server at {address}: {e.Status.Detail}");
                return 1;
            }
        });
        return command;
    }

    private static Task<StatusReply> QueryAsync(ParameterClient client, CancellationToken cancel) =>
        client.Client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow + Deadline, cancellationToken: cancel).ResponseAsync;

    private static async Task<int> ShowAsync(ParameterClient client, TextWriter output, CancellationToken cancel)
    {
        var status = await QueryAsync(client, cancel).ConfigureAwait(false);
        var console = Terminal.For(output);
        console.Write(View(status));
        output.WriteLine($"{(status.Finished ? "finished" : "so far")}: {ClusterView.Totals(status)}");
        return 0;
    }

    private static async Task<int> WatchAsync(ParameterClient client, string address, TextWriter output, TextWriter error, CancellationToken cancel)
    {
        var status = await QueryAsync(client, cancel).ConfigureAwait(false);
        var console = Terminal.For(output);
        bool gone = false;
        // NOTE: polled twice a second in both forms: a finished server waits only ~2 s for a
        // watcher to read its final figures before it exits.
        async Task NextAsync()
        {
            await Task.Delay(500, cancel).ConfigureAwait(false);
            try
            {
                status = await QueryAsync(client, cancel).ConfigureAwait(false);
            }
            catch (RpcException) when (!cancel.IsCancellationRequested)
            {
                gone = true;
            }
        }
        if (Terminal.IsInteractive(output))
        {
            await console.Live(View(status)).AutoClear(false).StartAsync(async context =>
            {
                while (!status.Finished && !gone)
                {
                    await NextAsync().ConfigureAwait(false);
                    context.UpdateTarget(View(status));
                }
            }).ConfigureAwait(false);
        }
        else
        {
            // Redirected: a line every 5 s while the global step moves, then the whole view.
            long shown = -1;
            var sincePrint = System.Diagnostics.Stopwatch.StartNew();
            while (!status.Finished && !gone)
            {
                if (status.Version != shown && (shown < 0 || sincePrint.Elapsed >= TimeSpan.FromSeconds(5)))
                {
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{status.Seconds:F0} s: {ClusterView.Totals(status)}"));
                    shown = status.Version;
                    sincePrint.Restart();
                }
                await NextAsync().ConfigureAwait(false);
            }
            console.Write(View(status));
        }
        if (gone)
        {
            error.WriteLine($"error: the parameter server at {address} stopped answering before its run finished; last seen at global step {ClusterView.GlobalStep(status):N0}");
            return 1;
        }
        output.WriteLine($"finished: {ClusterView.Totals(status)}");
        return 0;
    }

    private static Rows View(StatusReply s) =>
        ClusterView.Render(s, string.Create(CultureInfo.InvariantCulture, $"workers {s.Workers.Count(w => w.Active)} active of {s.Workers.Count}"));
}
