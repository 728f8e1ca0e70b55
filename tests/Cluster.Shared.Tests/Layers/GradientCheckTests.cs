using Cluster.Layers;
using Cluster.Tensors;
using Xunit.Abstractions;

namespace Cluster.Tests.Layers;

public sealed class GradientCheckTests(ITestOutputHelper output)
{
    private const float Epsilon = 1e-2f;

    /// <summary>
    /// Relative to max(1, |numeric|). The layers are linear or smooth at the points checked, so
    /// what remains is float32 rounding, about 1e-5 here; a transposed or mis-strided gradient is off by O(1).
    /// </summary>
    private const double Tolerance = 1e-3;

    public static TheoryData<string> Cases => new(
        "dense",
        "conv2d k3 s1 p0",
        "conv2d k3 s2 p1",
        "conv2d k1",
        "conv2d k2 s2",
        "conv2d k3 p1 long batch",
        "maxpool2d 2",
        "maxpool2d 2 wide rows",
        "maxpool2d 3 s2 p1",
        "avgpool2d 2",
        "avgpool2d 3 s2 p1",
        "relu",
        "leakyrelu",
        "sigmoid",
        "tanh",
        "flatten",
        "dropout",
        "batchnorm2d",
        "batchnorm1d",
        "globalavgpool2d",
        "residual identity",
        "residual projection",
        "reshape",
        "rnn last",
        "rnn sequence",
        "lstm last",
        "lstm sequence",
        "gru last",
        "gru sequence");

    private static GradientChecker Create(string name, int seed = 1) => name switch
    {
        "dense" => new(new Dense(4), 3, [6], GradientChecker.SmoothInput, seed),
        "conv2d k3 s1 p0" => new(new Conv2D(3, 3), 2, [2, 6, 6], GradientChecker.SmoothInput, seed),
        "conv2d k3 s2 p1" => new(new Conv2D(3, 3, stride: 2, padding: 1), 2, [3, 7, 7], GradientChecker.SmoothInput, seed),
        "conv2d k1" => new(new Conv2D(4, 1), 3, [3, 5, 5], GradientChecker.SmoothInput, seed),
        "conv2d k2 s2" => new(new Conv2D(2, 2, stride: 2), 2, [2, 7, 7], GradientChecker.SmoothInput, seed),
        // 3 × 10 × 10 = 300 output columns: the weight gradient takes the GEMM's dot-product path.
        "conv2d k3 p1 long batch" => new(new Conv2D(3, 3, padding: 1), 3, [2, 10, 10], GradientChecker.SmoothInput, seed),
        "maxpool2d 2" => new(new MaxPool2D(2), 2, [3, 5, 5], GradientChecker.Distinct, seed),
        // 18 columns: eight windows at a time through the vectorised 2×2 path, then the scalar tail.
        "maxpool2d 2 wide rows" => new(new MaxPool2D(2), 2, [2, 4, 18], GradientChecker.Distinct, seed),
        "maxpool2d 3 s2 p1" => new(new MaxPool2D(3, 2, 1), 2, [2, 7, 7], GradientChecker.Distinct, seed),
        "avgpool2d 2" => new(new AvgPool2D(2), 2, [3, 5, 5], GradientChecker.SmoothInput, seed),
        "avgpool2d 3 s2 p1" => new(new AvgPool2D(3, 2, 1), 2, [2, 7, 7], GradientChecker.SmoothInput, seed),
        "relu" => new(new ReLU(), 2, [3, 5, 5], GradientChecker.AwayFromZero, seed),
        "leakyrelu" => new(new LeakyReLU(0.2f), 2, [3, 5, 5], GradientChecker.AwayFromZero, seed),
        "sigmoid" => new(new Sigmoid(), 2, [3, 5, 5], GradientChecker.SmoothInput, seed),
        "tanh" => new(new Tanh(), 2, [3, 5, 5], GradientChecker.SmoothInput, seed),
        "flatten" => new(new Flatten(), 2, [2, 3, 4], GradientChecker.SmoothInput, seed),
        "dropout" => new(new Dropout(0.3f), 2, [3, 5, 5], GradientChecker.SmoothInput, seed, dropoutSeed: 17),
        "batchnorm2d" => new(new BatchNorm2D(), 3, [2, 4, 4], GradientChecker.SmoothInput, seed),
        "batchnorm1d" => new(new BatchNorm1D(), 6, [5], GradientChecker.SmoothInput, seed),
        "globalavgpool2d" => new(new GlobalAvgPool2D(), 2, [3, 2, 2], GradientChecker.SmoothInput, seed),
        "residual identity" => AwayFromKinks(new(new ResidualBlock(2), 2, [2, 4, 4], GradientChecker.SmoothInput, seed)),
        "residual projection" => AwayFromKinks(new(new ResidualBlock(3, stride: 2), 2, [2, 9, 9], GradientChecker.SmoothInput, seed)),
        "reshape" => new(new Reshape([4, 6]), 2, [2, 3, 4], GradientChecker.SmoothInput, seed),
        // Five steps of three features into four units: long enough that an error in the
        // recurrence (a wrong step, a missing dh from the future) shows in every gradient.
        "rnn last" => new(new Rnn(4), 3, [5, 3], GradientChecker.SmoothInput, seed),
        "rnn sequence" => new(new Rnn(4, RecurrentOutput.Sequence), 3, [5, 3], GradientChecker.SmoothInput, seed),
        "lstm last" => new(new Lstm(4), 3, [5, 3], GradientChecker.SmoothInput, seed),
        "lstm sequence" => new(new Lstm(4, RecurrentOutput.Sequence), 3, [5, 3], GradientChecker.SmoothInput, seed),
        "gru last" => new(new Gru(4), 3, [5, 3], GradientChecker.SmoothInput, seed),
        "gru sequence" => new(new Gru(4, RecurrentOutput.Sequence), 3, [5, 3], GradientChecker.SmoothInput, seed),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such case"),
    };

    /// <summary>
    /// Shifts the batch norms of a residual block so that both ReLUs see positive inputs: with
    /// normalised values near zero, ε = 1e-2 would cross their kinks and the check would test the
    /// kinks, not the block.
    /// </summary>
    private static GradientChecker AwayFromKinks(GradientChecker checker)
    {
        int offset = 0;
        foreach (var p in checker.Layer.Parameters)
        {
            int length = Tensor.Product(p.Shape);
            if (p.Name is "bn1.bias" or "bn2.bias" or "downsample.1.bias")
            {
                checker.Parameters.AsSpan(offset, length).Fill(p.Name == "downsample.1.bias" ? 1.5f : 3f);
            }
            if (p.Name is "bn1.weight" or "bn2.weight" or "downsample.1.weight")
            {
                checker.Parameters.AsSpan(offset, length).Fill(1f);
            }
            offset += length;
        }
        // A bias right before a batch norm has no effect on the output: its gradient is exactly zero.
        checker.MayBeZero = name => name.EndsWith("bias", StringComparison.Ordinal) && name.StartsWith("conv", StringComparison.Ordinal) || name == "downsample.0.bias";
        return checker;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Backward_matches_central_differences_of_the_loss(string layer)
    {
        foreach (int seed in new[] { 1, 2 })
        {
            var checker = Create(layer, seed);

            // NOTE: through two batch norms the loss curves enough that ε = 1e-2 leaves a truncation
            // error of about 1 %; at 3e-3 central differences agree with backward to about 1e-4,
            // with float32 noise up to a few 1e-3 (a wrong gradient is off by O(1)).
            bool residual = layer.StartsWith("residual", StringComparison.Ordinal);
            double worst = checker.AssertGradients(residual ? 3e-3f : Epsilon, residual ? 5e-3 : Tolerance);

            output.WriteLine($"{layer} seed {seed}: worst relative error {worst:E2}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Parameter_gradients_accumulate_and_the_input_gradient_is_overwritten(string layer)
    {
        var checker = Create(layer);
        checker.ForwardBackward();
        float[] once = (float[])checker.Gradients.Clone();
        float[] dx = checker.Dx.Span.ToArray();

        checker.ForwardBackward();

        for (int i = 0; i < once.Length; i++)
        {
            Assert.True(Math.Abs(checker.Gradients[i] - (2 * once[i])) <= 1e-5 * Math.Max(1, Math.Abs(once[i])), $"{layer}: gradient {i} is {checker.Gradients[i]} after two passes, {once[i]} after one");
        }
        Assert.Equal(dx, checker.Dx.Span.ToArray());
    }

    [Fact]
    public void Dropout_zeroes_about_p_of_the_elements_in_training_and_is_the_identity_in_evaluation()
    {
        var dropout = new Dropout(0.3f);
        dropout.Build([1000]);
        dropout.Allocate(4);
        dropout.Seed(3);
        var x = Tensor.FromValues(Enumerable.Repeat(1f, 4000).ToArray(), 4, 1000);
        var y = Tensor.Zeros(4, 1000);

        dropout.Forward(x, y, training: true);

        float[] values = y.Span.ToArray();
        Assert.All(values, v => Assert.True(v == 0f || Math.Abs(v - (1 / 0.7f)) < 1e-6f, $"{v} is neither dropped nor scaled by 1/(1 − p)"));
        Assert.InRange(values.Count(v => v == 0f) / 4000.0, 0.27, 0.33);

        dropout.Forward(x, y, training: false);

        Assert.Equal(x.Span.ToArray(), y.Span.ToArray());
    }
}
