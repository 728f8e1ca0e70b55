using System.Globalization;
using System.Text.RegularExpressions;
using Cluster.Data;
using Cluster.Training;
using Cluster.Worker;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.ParameterServer.Tests;

/// <summary>A server started with a Prometheus port serves the run's figures there, the same as its status.</summary>
public sealed partial class PrometheusMetricsTests
{
    [Fact]
    public async Task TheScrapedMetricsAreTheFiguresOfTheRunsStatus()
    {
        var options = new ServerOptions
        {
            Training = new TrainingOptions { Model = "mlp", Data = "embedded", Epochs = 1 },
            Workers = 2,
            Mode = "sync",
            Host = "127.0.0.1",
            Port = 0,
            PrometheusPort = 0,
        };
        options.Validate();
        await using var app = ParameterServerHost.Build(options, FashionMnist.LoadEmbedded());
        await app.StartAsync();
        string address = ParameterServerHost.ListeningAddress(app);
        string? scrape = ParameterServerHost.MetricsAddress(app);
        Assert.NotNull(scrape);
        Assert.NotEqual(new Uri(address).Port, new Uri(scrape).Port);

        int[] codes = await Task.WhenAll(Enumerable.Range(0, 2).Select(i => WorkerHost.RunAsync(new Dictionary<string, string?>
        {
            [nameof(WorkerOptions.Server)] = address,
            [nameof(WorkerOptions.Name)] = $"w{i}",
        }, CancellationToken.None))).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Equal([0, 0], codes);

        var run = app.Services.GetRequiredService<TrainingCoordinator>();
        // The last epoch is evaluated as the workers leave.
        await run.Finished.WaitAsync(TimeSpan.FromMinutes(1));
        var status = StatusBuilder.Build(run);
        using var http = new HttpClient();
        var metrics = Parse(await http.GetStringAsync(scrape));

        Assert.True(status.Version > 0);
        Assert.Equal(status.Version, metrics["cluster_updates_total"]);
        Assert.Equal(status.Samples, metrics["cluster_samples_total"]);
        Assert.Equal(status.RejectedPushes, metrics["cluster_pushes_rejected_total"]);
        Assert.Equal(1, metrics["cluster_epochs"]);
        Assert.Equal(status.Epochs.Single().TestAccuracy, metrics["cluster_test_accuracy"], 1e-9);
        // Every applied gradient in the staleness histogram (sync: all of staleness 0), every step's time but the first's.
        Assert.Equal(status.StalenessHistogram.Sum(), metrics["cluster_gradient_staleness_count"]);
        Assert.Equal(0, metrics["cluster_gradient_staleness_sum"]);
        Assert.Equal(status.Version - 1, metrics["cluster_step_duration_seconds_count"]);
        foreach (var worker in status.Workers)
        {
            string tags = $"rank=\"{worker.WorkerId}\",worker=\"{worker.Name}\"";
            Assert.Equal(worker.Pushes, metrics[$"cluster_worker_pushes_total{{{tags}}}"]);
            Assert.Equal(worker.Time.ComputeMs / 1000, metrics[$"cluster_worker_time_seconds_total{{part=\"compute\",{tags}}}"], 1e-9);
            Assert.Equal(worker.Time.WaitMs / 1000, metrics[$"cluster_worker_time_seconds_total{{part=\"wait\",{tags}}}"], 1e-9);
            Assert.Equal(worker.MeanLatenessMs / 1000, metrics[$"cluster_worker_lateness_seconds{{{tags}}}"], 1e-9);
            Assert.Equal(worker.Straggler ? 1 : 0, metrics[$"cluster_worker_straggler{{{tags}}}"]);
        }
        Assert.Equal(["w0", "w1"], status.Workers.Select(w => w.Name).Order());

        // The gRPC port serves gRPC only: a scrape there is not answered with metrics.
        using var h1 = await http.GetAsync(address + "/metrics");
        Assert.False(h1.IsSuccessStatusCode);
    }

    /// <summary>Prometheus's text format as name{labels} → value, without the scope label every series carries.</summary>
    private static Dictionary<string, double> Parse(string text)
    {
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (Match m in Sample().Matches(text))
        {
            string labels = string.Join(",", m.Groups["labels"].Value.Split(',', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("otel_scope_name=", StringComparison.Ordinal)));
            values[m.Groups["name"].Value + (labels.Length > 0 ? $"{{{labels}}}" : "")] = double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
        }
        return values;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)", RegexOptions.Multiline)]
    private static partial Regex Sample();
}
