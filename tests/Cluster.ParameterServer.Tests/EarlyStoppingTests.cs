using Cluster.Data;
using Cluster.Training;
using Cluster.Wire;
using Cluster.Worker;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.ParameterServer.Tests;

/// <summary>Early stopping in a cluster: the server holds a validation split out, and the workers never train on it.</summary>
public sealed class EarlyStoppingTests
{
    [Fact]
    public async Task WorkersTrainOnTheImagesTheServerDoesNotHoldOutForValidation()
    {
        var data = FashionMnist.LoadEmbedded();
        var options = new ServerOptions
        {
            Training = new TrainingOptions { Model = "mlp", Data = "embedded", Epochs = 3, Patience = 2, Seed = 7 },
            Workers = 2,
            Host = "127.0.0.1",
            Port = 0,
        };
        options.Validate();
        await using var app = ParameterServerHost.Build(options, data);
        await app.StartAsync();
        using var client = new ParameterClient(ParameterServerHost.ListeningAddress(app));
        var join = await client.Client.JoinAsync(new JoinRequest { WorkerName = "early-stopping" });
        var run = app.Services.GetRequiredService<TrainingCoordinator>();

        // --patience without --validation holds out 10 %, as train does; an epoch is the rest.
        Assert.Equal(0.1, join.Settings.ValidationFraction);
        var validation = run.Validation!;
        Assert.Equal(1_000, validation.Count);
        Assert.Equal(3L * 9_000, run.TotalSamples);
        var train = TrainingWorker.TrainingSet(data, join.Settings);
        Assert.Equal(9_000, train.Count);
        // The worker's images and the server's held-out ones are the training set, each image once.
        Assert.Equal(Fingerprints(data.Train), Fingerprints(train).Concat(Fingerprints(validation)).Order());
    }

    /// <summary>Each image's pixels and label as one number, sorted: the data set as a multiset.</summary>
    private static IEnumerable<long> Fingerprints(Dataset set) =>
        Enumerable.Range(0, set.Count).Select(i =>
        {
            var hash = new HashCode();
            hash.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(set.Image(i)));
            hash.Add(set.Labels[i]);
            return ((long)hash.ToHashCode() << 8) | set.Labels[i];
        }).Order();
}
