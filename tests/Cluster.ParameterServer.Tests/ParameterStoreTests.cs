using Cluster.Models;
using Cluster.Optim;

namespace Cluster.ParameterServer.Tests;

public sealed class ParameterStoreTests
{
    [Fact]
    public void With_a_clip_norm_an_update_moves_the_weights_by_at_most_that_norm_and_leaves_the_gradient_alone()
    {
        var model = new Sequential(ModelPresets.Resolve("mlp"));
        model.Initialize(1);
        var store = new ParameterStore(model.Parameters, Optimizer.Create(new OptimizerOptions { Name = "sgd", LearningRate = 1f }, model.NamedParameters)) { ClipNorm = 0.5f };
        var gradient = Enumerable.Range(0, store.Size).Select(i => (i % 7) - 3f).ToArray();
        var sent = gradient.ToArray();

        store.Apply(gradient);

        var after = new float[store.Size];
        store.CopyWeights(after);
        double moved = Math.Sqrt(after.Zip(model.Parameters, (a, b) => (double)(a - b) * (a - b)).Sum());
        Assert.Equal(0.5, moved, 1e-3);
        Assert.Equal(sent, gradient);
        Assert.Equal(1, store.Version);
    }
}
