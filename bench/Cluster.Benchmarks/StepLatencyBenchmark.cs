using System.Diagnostics;
using Cluster.Data;
using Cluster.ParameterServer;
using Cluster.Training;
using Cluster.Wire;
using Cluster.Worker;

namespace Cluster.Benchmarks;

/// <summary>
/// The latency of one push and one pull of a real model's worth of floats (<c>quick rtt [MODEL] [CHUNK_FLOATS]</c>):
/// a parameter server in this process, one worker, async mode, no compute, so what is measured
/// is the wire and the server's own work per step, without other processes competing for cores.
/// The server's optimizer is Adam, or the one named by the RTT_OPTIMIZER environment variable.
/// </summary>
public static class StepLatencyBenchmark
{
    public static async Task RunAsync(string model, int chunkFloats)
    {
        var options = new ServerOptions
        {
            Training = new TrainingOptions { Model = model, Data = "embedded", Epochs = 1000, Optimizer = Environment.GetEnvironmentVariable("RTT_OPTIMIZER") ?? "adam" },
            Workers = 1,
            Mode = "async",
            Host = "127.0.0.1",
            Port = 0,
            ChunkFloats = chunkFloats,
            WorkerTimeoutSeconds = 600,
        };
        options.Validate();
        await using var app = ParameterServerHost.Build(options, FashionMnist.LoadEmbedded());
        await app.StartAsync();
        using var client = new ParameterClient(ParameterServerHost.ListeningAddress(app));
        var join = await client.Client.JoinAsync(new JoinRequest { WorkerName = "rtt" });
        var weights = new float[join.ParameterCount];
        var gradient = new float[join.ParameterCount];
        var chunks = ParameterClient.ChunksOf(join);
        var bytes = FloatBytes.AsBytes(gradient);
        var push = new List<double>();
        var pull = new List<double>();
        int gen2 = GC.CollectionCount(2);
        for (int i = 0; i < 300; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            var pulled = await client.PullAsync(join.WorkerId, 0, weights, chunks, CancellationToken.None);
            long t1 = Stopwatch.GetTimestamp();
            await client.PushAsync(join.WorkerId, i, pulled.Version, bytes, chunks, 1f, 64, CancellationToken.None);
            long t2 = Stopwatch.GetTimestamp();
            if (i >= 50)
            {
                pull.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                push.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
            }
        }
        push.Sort();
        pull.Sort();
        Console.WriteLine($"{model} ({join.ParameterCount:N0} floats, {join.ParameterCount * 4 / 1e6:F2} MB), chunks of {chunkFloats:N0} floats: pull median {pull[pull.Count / 2]:F2} ms, push median {push[push.Count / 2]:F2} ms (push includes the server's update); gen2 GCs in this process: {GC.CollectionCount(2) - gen2}");
        await app.StopAsync();
    }
}
