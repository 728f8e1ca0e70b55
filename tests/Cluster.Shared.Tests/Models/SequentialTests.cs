using Cluster.Models;
using Cluster.Tensors;
using Cluster.Tests.Layers;

namespace Cluster.Tests.Models;

public sealed class SequentialTests
{
    private const string Spec = "input 2 6 6; conv2d 3 3; relu; maxpool2d 2; flatten; dense 4";

    [Fact]
    public void A_smaller_batch_after_a_larger_one_gives_each_sample_the_same_output()
    {
        var model = new Sequential(ModelSpec.Parse(Spec));
        model.Initialize(2);
        float[] images = GradientChecker.Uniform(new Random(3), 5 * 72, 1f);
        float[] all = model.Forward(Tensor.FromValues(images, 5, 2, 6, 6), training: false).Span.ToArray();

        var firstTwo = model.Forward(Tensor.FromValues(images.AsSpan(0, 2 * 72), 2, 2, 6, 6), training: false);

        Assert.Equal([2, 4], firstTwo.Shape.ToArray());
        Assert.Equal(all.AsSpan(0, 8).ToArray(), firstTwo.Span.ToArray(), (a, b) => Math.Abs(a - b) <= 1e-6f);
    }

    [Fact]
    public void Input_of_the_wrong_size_and_backward_before_forward_are_rejected()
    {
        var model = new Sequential(ModelSpec.Parse(Spec));

        Assert.Throws<InvalidOperationException>(model.Backward);
        var error = Assert.Throws<ArgumentException>(() => model.Forward(Tensor.Zeros(3, 1, 6, 6), training: false));
        Assert.Contains("[2, 6, 6]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Layers_view_the_flat_parameter_and_gradient_buffers()
    {
        var model = new Sequential(ModelSpec.Parse(Spec));

        var dense = model.Layers[^1];
        var named = model.NamedParameters.Single(p => p.Name == "4.weight");
        Assert.Same(model.Parameters, dense.Weights[0].Data);
        Assert.Same(model.Gradients, dense.Gradients[0].Data);
        Assert.Equal(named.Offset, dense.Weights[0].Offset);
        Assert.Equal(named.Offset, dense.Gradients[0].Offset);
    }
}
