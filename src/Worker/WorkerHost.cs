using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Cluster.Worker;

/// <summary>Runs a worker as a Generic Host until its run is over; returns the process exit code.</summary>
public static class WorkerHost
{
    /// <summary>
    /// Builds the host with <see cref="WorkerOptions"/> bound from the "Worker" configuration
    /// section (environment variables CLUSTER_Worker__Server, ...) overlaid by
    /// <paramref name="overrides"/> from the command line, runs it and returns the exit code.
    /// </summary>
    public static async Task<int> RunAsync(IDictionary<string, string?> overrides, CancellationToken cancel)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddEnvironmentVariables("CLUSTER_");
        builder.Configuration.AddInMemoryCollection(overrides.ToDictionary(kv => "Worker:" + kv.Key, kv => kv.Value));
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("System.Net.Http", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        builder.Services.AddOptions<WorkerOptions>().Bind(builder.Configuration.GetSection("Worker"));
        builder.Services.AddSingleton<WorkerOutcome>();
        builder.Services.AddHostedService<TrainingWorker>();
        using var host = builder.Build();
        // NOTE: RunAsync disposes the host, so the outcome is taken out first.
        var outcome = host.Services.GetRequiredService<WorkerOutcome>();
        await host.RunAsync(cancel).ConfigureAwait(false);
        return outcome.ExitCode;
    }
}
