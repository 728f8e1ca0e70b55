using Cluster.Models;
using Cluster.Tensors;
using Cluster.Training;
using Cluster.Optim;

namespace Cluster.Tests.Models;

/// <summary>
/// The readiness callback of backward: once it reports an offset, the gradients from there to the
/// end of the flat buffer never change again in that step (a worker sends them right away).
/// </summary>
public sealed class BackwardReadinessTests
{
    [Fact]
    public void GradientsReportedReadyAreFinal()
    {
        var model = new Sequential(ModelPresets.Resolve("lenet"));
        model.Initialize(2);
        var trainer = new Trainer(model, Optimizer.Create(new OptimizerOptions { Name = "sgd" }, model.NamedParameters), 8);
        var random = new SeededRandom(3);
        foreach (ref float v in trainer.Images.Span)
        {
            v = random.NextGaussian();
        }
        for (int i = 0; i < 8; i++)
        {
            trainer.Labels[i] = random.NextInt(10);
        }

        var offsets = new List<int>();
        var snapshots = new List<float[]>();
        float? lossSeen = null;
        float loss = trainer.ComputeGradient(8, l => lossSeen = l, from =>
        {
            offsets.Add(from);
            snapshots.Add(model.Gradients[from..]);
        });

        Assert.Equal(loss, lossSeen);
        Assert.Equal(offsets.OrderByDescending(o => o), offsets);
        Assert.Equal(0, offsets[^1]);
        Assert.Equal(4, offsets.Count);
        for (int i = 0; i < offsets.Count; i++)
        {
            Assert.Equal(snapshots[i], model.Gradients[offsets[i]..]);
        }
        Assert.Contains(model.Gradients, g => g != 0f);
    }
}
