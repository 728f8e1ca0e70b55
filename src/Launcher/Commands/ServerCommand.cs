using System.CommandLine;
using System.Security.Cryptography.X509Certificates;
using Cluster.Data;
using Cluster.ParameterServer;
using Cluster.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Launcher.Commands;

/// <summary><c>cluster server</c>: the parameter server of a cluster; workers on this or other machines join it.</summary>
internal static class ServerCommand
{
    public static Command Create(TextWriter output)
    {
        var flags = new ClusterFlags();
        var port = new Option<int>("--port") { Description = "TCP port to listen on (0: any free port)", DefaultValueFactory = _ => 5000 };
        var host = new Option<string>("--host") { Description = "address to bind: 0.0.0.0 for other machines, 127.0.0.1 for this one", DefaultValueFactory = _ => "0.0.0.0" };
        var threads = new Option<int>("--threads") { Description = "threads for the server's test evaluations", DefaultValueFactory = _ => 1 };
        var tokenFile = new Option<string?>("--token-file") { Description = $"file whose first line is the cluster token every call must carry (default: ${Wire.ClusterToken.EnvironmentVariable}, else none)" };
        var tlsCertificate = new Option<string?>("--tls-cert") { Description = "PEM certificate (chain) to serve gRPC over TLS with; workers then use https://" };
        var tlsKey = new Option<string?>("--tls-key") { Description = "PEM private key of --tls-cert" };
        var command = new Command("server", "run the parameter server of a cluster") { port, host, threads, tokenFile, tlsCertificate, tlsKey };
        flags.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            var options = flags.Bind(parse) with { Port = parse.GetValue(port), Host = parse.GetValue(host)!, EvaluationThreads = Math.Max(1, parse.GetValue(threads)) };
            using var certificate = (parse.GetValue(tlsCertificate), parse.GetValue(tlsKey)) switch
            {
                (null, null) => null,
                (string certificateFile, string keyFile) => Wire.ClusterTls.LoadServerCertificate(certificateFile, keyFile),
                _ => throw new InvalidOptionException("--tls-cert and --tls-key go together: give both, or neither to serve without TLS"),
            };
            return await RunAsync(options, Wire.ClusterToken.Resolve(parse.GetValue(tokenFile)), output, cancel, certificate).ConfigureAwait(false);
        });
        return command;
    }

    public static async Task<int> RunAsync(ServerOptions options, string? token, TextWriter output, CancellationToken cancel, X509Certificate2? certificate = null)
    {
        options.Validate();
        if (!System.Net.IPAddress.TryParse(options.Host, out _))
        {
            throw new InvalidOptionException($"--host '{options.Host}' is not an IP address: use 0.0.0.0 or 127.0.0.1");
        }
        var data = FashionMnist.Load(options.Training.Data);
        var spec = options.Training.Validate();
        spec.RequireFits(data);
        _ = options.Training.ParseAugmentation(data);
        var model = new Models.Sequential(spec);
        options.CheckEmulatedProfile(Wire.ChunkLayout.ForTensors(model.NamedParameters, model.ParameterCount, options.ChunkFloats));
        await using var app = ParameterServerHost.Build(options, data, logging => logging
            .AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            })
            .AddFilter("Microsoft", LogLevel.Warning)
            .AddFilter("Grpc", LogLevel.Warning), token, certificate);
        try
        {
            await app.StartAsync(cancel).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            // Kestrel's message names the address it could not bind: say which flag chose it.
            string flag = options.PrometheusPort is int metricsPort && e.Message.Contains($":{metricsPort}", StringComparison.Ordinal) ? $"--prometheus-port {metricsPort}" : $"--port {options.Port}";
            throw new InvalidOptionException($"{flag}: {e.Message.TrimEnd('.')}; choose another port");
        }
        var run = app.Services.GetRequiredService<TrainingCoordinator>();
        output.WriteLine($"parameter server listening on {ParameterServerHost.ListeningAddress(app)}: mode {run.Rule.Name}, {options.Workers} worker(s)"
            + (options.BackupWorkers > 0 ? $" + {options.BackupWorkers} backup" : "")
            + $", model {run.Spec.Name ?? options.Training.Model} ({run.Store.Size:N0} parameters), data {data.Source}, {options.Training.Epochs} epoch(s)"
            + (run.StartEpoch > 0 ? $", resuming {options.Training.Resume} after epoch {run.StartEpoch}" : "")
            + (run.EffectivePushLanes > 1 ? $", {run.EffectivePushLanes} push lanes" : "")
            + (token is null ? "" : ", cluster token required")
            + (certificate is null ? "" : $", TLS with {certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false)}'s certificate")
            + (ParameterServerHost.MetricsAddress(app) is string scrape ? $"; metrics for Prometheus at {scrape}" : ""));
        if (options.PushLanes > run.EffectivePushLanes)
        {
            output.WriteLine($"note: --push-lanes {options.PushLanes} applies to sync mode without backup workers or --clip-norm; mode {run.Rule.Name} pushes on 1 lane");
        }
        bool reachableFromOutside = !System.Net.IPAddress.IsLoopback(System.Net.IPAddress.Parse(options.Host));
        if (reachableFromOutside)
        {
            // NOTE: the listening address is 0.0.0.0 when bound to every interface: name the machine instead.
            int boundPort = new Uri(ParameterServerHost.ListeningAddress(app)).Port;
            output.WriteLine($"workers join with: cluster worker --server {(certificate is null ? "http" : "https")}://{System.Net.Dns.GetHostName()}:{boundPort}"
                + (certificate is null ? "" : " --tls-ca CERT.pem"));
        }
        if (token is null && reachableFromOutside)
        {
            output.WriteLine($"warning: no cluster token: anyone who reaches port {options.Port} can join, push gradients and read the weights; "
                + $"set {Wire.ClusterToken.EnvironmentVariable} or --token-file on the server and every worker");
        }
        if (certificate is null && reachableFromOutside)
        {
            output.WriteLine("note: no TLS: weights, gradients and the cluster token cross the network in the clear; give --tls-cert and --tls-key to encrypt them");
        }
        bool stopped = false;
        try
        {
            await run.Finished.WaitAsync(cancel).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            stopped = true;
            run.Stop();
        }
        // Let the workers see that the run is over and leave, so none is cut off mid-call
        // (not when stopped by a signal: then the point is to stop promptly).
        for (int i = 0; i < 100 && run.Membership.ActiveCount > 0 && !stopped; i++)
        {
            await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
        }
        // And give a watching launcher the chance to read the final figures (it polls every 0.5 s).
        for (int i = 0; i < 20 && !run.FinalStatusServed && !stopped; i++)
        {
            await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
        }
        var status = StatusBuilder.Build(run);
        if (options.Training.Metrics is string metrics)
        {
            run.WriteMetrics(metrics);
        }
        output.WriteLine($"run {(stopped ? "stopped" : "finished")}: {status.Version:N0} updates{(status.StartStep > 0 ? $" after resuming at global step {status.StartStep:N0}" : "")}, {status.Samples:N0} samples in {status.Seconds:F1} s ({status.ImagesPerSec:N0} images/s), {status.RejectedPushes} rejected, {status.DroppedLate} dropped late"
            + (status.UnauthenticatedCalls > 0 ? $", {status.UnauthenticatedCalls} call(s) refused for their cluster token" : "")
            + (run.TimeToAccuracy is double tta ? $", target accuracy reached after {tta:F1} s" : ""));
        if (ClusterView.BestKept(status) is string kept)
        {
            output.WriteLine(kept);
        }
        int code = stopped ? 130 : 0;
        if (options.Training.Save is not null)
        {
            if (run.CheckpointError is string error)
            {
                output.WriteLine($"checkpoint not written: {error}");
                code = stopped ? 130 : 1;
            }
            else if (run.CheckpointSaved is string saved)
            {
                output.WriteLine($"saved {saved}");
            }
            else
            {
                output.WriteLine($"no checkpoint written: the run {(stopped ? "was stopped" : "ended")} before its first evaluation");
                code = stopped ? 130 : 1;
            }
        }
        await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        run.Dispose();
        return code;
    }
}
