using System.Diagnostics;
using Cluster.Worker;

namespace Cluster.ParameterServer.Tests;

/// <summary>A worker that cannot reach its server retries with back-off, then gives up with exit code 1.</summary>
public sealed class WorkerConnectionTests
{
    [Fact]
    public async Task UnreachableServerIsRetriedThenGivenUp()
    {
        var clock = Stopwatch.StartNew();
        int code = await WorkerHost.RunAsync(new Dictionary<string, string?>
        {
            [nameof(WorkerOptions.Server)] = "http://127.0.0.1:9",
            [nameof(WorkerOptions.ConnectTimeoutSeconds)] = "2",
        }, CancellationToken.None);
        Assert.Equal(1, code);
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.0, 20.0);
    }
}
