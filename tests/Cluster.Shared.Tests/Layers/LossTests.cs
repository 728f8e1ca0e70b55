using Cluster.Layers;
using Cluster.Tensors;

namespace Cluster.Tests.Layers;

public sealed class LossTests
{
    [Theory]
    [InlineData("cross-entropy")]
    [InlineData("mse")]
    public void Backward_matches_central_differences_of_the_mean_loss(string name)
    {
        var loss = Loss.Create(name);
        var random = new Random(7);
        var output = Tensor.FromValues(GradientChecker.Uniform(random, 4 * 5, 2f), 4, 5);
        int[] labels = [3, 0, 4, 3];
        var gradient = Tensor.Zeros(4, 5);

        loss.Backward(output, labels, gradient);

        for (int i = 0; i < output.Length; i++)
        {
            double numeric = GradientChecker.NumericDerivative(output.Data, i, 1e-2f, () => loss.Forward(output, labels));
            Assert.True(Math.Abs(gradient.Data[i] - numeric) <= 1e-3 * Math.Max(1, Math.Abs(numeric)), $"{name}: d/dz[{i}] is {gradient.Data[i]} but central differences give {numeric}");
        }
    }

    [Fact]
    public void Cross_entropy_of_a_two_class_example_equals_the_hand_value()
    {
        var logits = Tensor.FromValues([0f, MathF.Log(3f)], 1, 2);
        var gradient = Tensor.Zeros(1, 2);
        var loss = new SoftmaxCrossEntropy();

        float value = loss.Forward(logits, [1]);
        loss.Backward(logits, [1], gradient);

        // softmax = [1/4, 3/4], so the loss is −ln(3/4) and the gradient softmax − onehot.
        Assert.Equal(Math.Log(4.0 / 3.0), value, 1e-6);
        Assert.Equal(0.25f, gradient.Data[0], 1e-6f);
        Assert.Equal(-0.25f, gradient.Data[1], 1e-6f);
    }

    [Fact]
    public void Cross_entropy_is_the_mean_over_the_batch()
    {
        var loss = new SoftmaxCrossEntropy();
        var batch = Tensor.FromValues([0f, MathF.Log(3f), 2f, 2f], 2, 2);
        var gradient = Tensor.Zeros(2, 2);

        float value = loss.Forward(batch, [1, 0]);
        loss.Backward(batch, [1, 0], gradient);

        Assert.Equal((Math.Log(4.0 / 3.0) + Math.Log(2.0)) / 2, value, 1e-6);
        Assert.Equal([0.125f, -0.125f, -0.25f, 0.25f], gradient.Data, (a, b) => Math.Abs(a - b) < 1e-6f);
    }

    [Fact]
    public void Cross_entropy_stays_finite_for_huge_logits()
    {
        var logits = Tensor.FromValues([1000f, -1000f, 0f, -1000f, 1000f, 0f], 2, 3);
        var gradient = Tensor.Zeros(2, 3);
        var loss = new SoftmaxCrossEntropy();

        float right = loss.Forward(logits, [0, 1]);
        loss.Backward(logits, [0, 1], gradient);

        Assert.Equal(0f, right, 1e-6f);
        Assert.All(gradient.Data, g => Assert.True(float.IsFinite(g), $"gradient {g} is not finite"));
        Assert.Equal([0f, 0f, 0f, 0f, 0f, 0f], gradient.Data, (a, b) => Math.Abs(a - b) < 1e-6f);

        float wrong = loss.Forward(logits, [1, 0]);
        loss.Backward(logits, [1, 0], gradient);

        // Each sample is 2000 nats off; the gradient is (softmax − onehot) / 2.
        Assert.Equal(2000f, wrong, 1e-2f);
        Assert.Equal([0.5f, -0.5f, 0f, -0.5f, 0.5f, 0f], gradient.Data, (a, b) => Math.Abs(a - b) < 1e-6f);
    }

    [Fact]
    public void Mean_squared_error_against_one_hot_labels_equals_the_hand_value()
    {
        var output = Tensor.FromValues([1f, 2f, 0.5f, 0f], 2, 2);
        var gradient = Tensor.Zeros(2, 2);
        var loss = new MeanSquaredError();
        int[] labels = [0, 1];

        float value = loss.Forward(output, labels);
        loss.Backward(output, labels, gradient);

        // Targets [1, 0, 0, 1]: squared errors 0, 4, 0.25, 1 over 4 elements; gradient 2(y − t)/4.
        Assert.Equal(5.25f / 4, value, 1e-6f);
        Assert.Equal([0f, 1f, 0.25f, -0.5f], gradient.Data, (a, b) => Math.Abs(a - b) < 1e-6f);
        float[] targets = [1f, 0f, 0f, 1f];
        Assert.Equal(value, MeanSquaredError.Forward(output, targets));
    }

    [Theory]
    [InlineData("cross-entropy")]
    [InlineData("mse")]
    public void Labels_outside_the_classes_or_of_the_wrong_count_are_rejected(string name)
    {
        var loss = Loss.Create(name);
        var output = Tensor.Zeros(2, 3);

        Assert.Contains("label 3", Assert.Throws<ArgumentException>(() => loss.Forward(output, [0, 3])).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => loss.Forward(output, [-1, 0]));
        Assert.Throws<ArgumentException>(() => loss.Backward(output, [0], Tensor.Zeros(2, 3)));
    }

    [Fact]
    public void An_unknown_loss_name_is_rejected_by_name()
    {
        var error = Assert.Throws<Cluster.Models.ModelSpecException>(() => Loss.Create("hinge"));

        Assert.Contains("'hinge'", error.Message, StringComparison.Ordinal);
    }
}
