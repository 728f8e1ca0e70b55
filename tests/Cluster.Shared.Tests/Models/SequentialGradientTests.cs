using Cluster.Models;
using Cluster.Tensors;
using Cluster.Tests.Layers;
using Xunit.Abstractions;

namespace Cluster.Tests.Models;

public sealed class SequentialGradientTests(ITestOutputHelper output)
{
    private const string Spec = """
        input 2 8 8
        conv2d 4 3 pad=1
        relu
        maxpool2d 2
        conv2d 3 3 stride=2
        tanh
        flatten
        dense 5
        """;

    private const float Epsilon = 1e-3f;

    /// <summary>Absolute for these gradients (all below 1); typical errors are about 1e-5, a wrong gradient is off by its own size, about 1e-2 to 1.</summary>
    private const double Tolerance = 1e-3;

    [Fact]
    public void Backward_gives_the_gradient_of_the_loss_for_every_parameter()
    {
        var model = new Sequential(ModelSpec.Parse(Spec));
        model.Initialize(seed: 3);
        var random = new Random(4);
        // Batch 4: 4 × 8 × 8 = 256 patch columns, so the first convolution's weight gradient takes the dot-product GEMM.
        var input = Tensor.FromValues(GradientChecker.Uniform(random, 4 * 2 * 8 * 8, 1f), 4, 2, 8, 8);
        int[] labels = [1, 4, 0, 4];
        model.ZeroGradients();
        var outputs = model.Forward(input, training: true);
        model.Loss.Backward(outputs, labels, model.OutputGradient);
        model.Backward();
        float[] analytic = (float[])model.Gradients.Clone();
        double Loss() => model.Loss.Forward(model.Forward(input, training: true), labels);

        int oneSided = 0;
        double largest = 0;
        for (int i = 0; i < model.ParameterCount; i++)
        {
            double central = GradientChecker.NumericDerivative(model.Parameters, i, Epsilon, Loss);
            largest = Math.Max(largest, Math.Abs(central));
            if (Math.Abs(analytic[i] - central) <= Tolerance)
            {
                continue;
            }
            // The ReLU and the max pooling have kinks; a step of ε may cross one on one side, but
            // rarely on both, and the derivative from the clean side must still match.
            (double left, double right) = OneSided(model.Parameters, i, Loss);
            Assert.True(
                Math.Abs(analytic[i] - left) <= Tolerance || Math.Abs(analytic[i] - right) <= Tolerance,
                $"{NameOf(model, i)}: analytic {analytic[i]}, central {central}, left {left}, right {right}");
            oneSided++;
            output.WriteLine($"kink near {NameOf(model, i)}: analytic {analytic[i]}, central {central}, left {left}, right {right}");
        }

        output.WriteLine($"{model.ParameterCount} parameters, {oneSided} matched only from one side, largest derivative {largest:F3}");
        Assert.True(oneSided <= model.ParameterCount / 10, $"{oneSided} of {model.ParameterCount} parameters only matched from one side");
        Assert.True(largest > 0.05, "every derivative is about zero, the check proves nothing");
    }

    private static (double Left, double Right) OneSided(float[] values, int index, Func<double> loss)
    {
        float original = values[index];
        double at = loss();
        values[index] = original - Epsilon;
        double below = loss();
        values[index] = original + Epsilon;
        double above = loss();
        values[index] = original;
        return ((at - below) / ((double)original - (original - Epsilon)), (above - at) / ((double)(original + Epsilon) - original));
    }

    private static string NameOf(Sequential model, int index)
    {
        var parameter = model.NamedParameters.Last(p => p.Offset <= index);
        return $"{parameter.Name}[{index - parameter.Offset}]";
    }
}
