using Cluster.Models;
using Cluster.Optim;
using static Cluster.Tests.Optim.OptimizerFixture;

namespace Cluster.Tests.Optim;

public sealed class OptimizerTests
{
    public static TheoryData<string, float> Optimizers => new()
    {
        { "sgd", 0f }, { "momentum", 0f }, { "nesterov", 0f }, { "adam", 0f },
        { "sgd", 0.1f }, { "momentum", 0.1f }, { "nesterov", 0.1f }, { "adam", 0.1f },
    };

    [Theory]
    [MemberData(nameof(Optimizers))]
    public void Three_steps_follow_the_pytorch_update_rule(string name, float weightDecay)
    {
        var options = new OptimizerOptions { Name = name, LearningRate = 0.1f, Momentum = 0.9f, WeightDecay = weightDecay };
        var optimizer = Optimizer.Create(options, Layout);
        double[][] expected = PyTorchReference(options);
        OptimizerFixture.AssertFollows(optimizer, expected, $"{name} λ={weightDecay}");
    }

    [Theory]
    [InlineData("sgd", 0.95f, 1.05f)]
    [InlineData("momentum", 0.95f, 1.005f)] // v = 0.5, then 0.9·0.5 − 1 = −0.55
    [InlineData("nesterov", 0.905f, 1.0545f)] // steps of g + 0.9·v: 0.95, then −1 − 0.495
    [InlineData("adam", 0.9f, 0.93661035f)] // the first step is lr·sign(g), whatever |g|
    public void Two_steps_on_one_weight_match_hand_computed_values(string name, float afterOne, float afterTwo)
    {
        var optimizer = Optimizer.Create(new OptimizerOptions { Name = name, LearningRate = 0.1f }, [new NamedParameter("0.weight", 0, [1], true)]);
        float[] w = [1f];

        optimizer.Step(w, [0.5f]);
        Assert.Equal(afterOne, w[0], 1e-6f);

        optimizer.Step(w, [-1f]);
        Assert.Equal(afterTwo, w[0], 1e-6f);
    }

    [Fact]
    public void Adam_moves_every_weight_by_the_learning_rate_on_its_first_step()
    {
        var optimizer = Optimizer.Create(new OptimizerOptions { Name = "adam", LearningRate = 1e-3f }, Layout);
        float[] parameters = (float[])Start.Clone();

        optimizer.Step(parameters, StepGradients[0]);

        for (int i = 0; i < parameters.Length; i++)
        {
            Assert.Equal(Start[i] - (1e-3 * Math.Sign(StepGradients[0][i])), parameters[i], 1e-6);
        }
    }

    [Fact]
    public void Weight_decay_applies_to_weights_and_not_to_biases()
    {
        var optimizer = Optimizer.Create(new OptimizerOptions { Name = "sgd", LearningRate = 0.1f, WeightDecay = 0.1f }, Layout);
        float[] parameters = Enumerable.Repeat(1f, 11).ToArray();
        float[] gradients = Enumerable.Repeat(0.5f, 11).ToArray();

        optimizer.Step(parameters, gradients);

        // Weights: 1 − 0.1·(0.5 + 0.1·1); biases: 1 − 0.1·0.5.
        Assert.All(parameters[..9], w => Assert.Equal(0.94f, w, 1e-6f));
        Assert.All(parameters[9..], b => Assert.Equal(0.95f, b, 1e-6f));
        Assert.All(gradients, g => Assert.Equal(0.5f, g));
    }

    [Fact]
    public void A_changed_learning_rate_applies_from_the_next_step()
    {
        var optimizer = Optimizer.Create(new OptimizerOptions { Name = "sgd", LearningRate = 0.1f }, Layout);
        float[] parameters = new float[11];

        optimizer.LearningRate = 0.5f;
        optimizer.Step(parameters, Enumerable.Repeat(1f, 11).ToArray());

        Assert.All(parameters, w => Assert.Equal(-0.5f, w));
    }

    [Theory]
    [InlineData(0f, "learning rate 0 ")]
    [InlineData(-0.5f, "learning rate -0.5 ")]
    [InlineData(float.NaN, "learning rate NaN ")]
    public void A_learning_rate_that_is_not_positive_is_rejected_naming_it(float learningRate, string named)
    {
        foreach (string name in OptimizerOptions.Names)
        {
            var error = Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { Name = name, LearningRate = learningRate }, Layout));

            Assert.Contains(named, error.Message, StringComparison.Ordinal);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { LearningRate = float.PositiveInfinity }, Layout));
    }

    [Fact]
    public void An_unknown_optimizer_is_rejected_naming_it_and_the_known_ones()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { Name = "lion" }, Layout));

        Assert.Contains("'lion'", error.Message, StringComparison.Ordinal);
        Assert.All(OptimizerOptions.Names, name => Assert.Contains(name, error.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void Out_of_range_settings_and_mismatched_buffers_are_rejected()
    {
        Assert.Contains("-0.1", Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { WeightDecay = -0.1f }, Layout)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { Name = "momentum", Momentum = 1f }, Layout));
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { Name = "adam", Beta1 = 1f }, Layout));
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { Name = "adam", Epsilon = 0f }, Layout));

        var optimizer = Optimizer.Create(new OptimizerOptions(), Layout);
        Assert.Equal(11, optimizer.Size);
        Assert.Throws<ArgumentException>(() => optimizer.Step(new float[10], new float[11]));
        Assert.Throws<ArgumentException>(() => optimizer.Step(new float[11], new float[12]));
    }

    /// <summary>torch.optim.SGD and Adam written out in double: the parameters after each of <see cref="StepGradients"/>.</summary>
    private static double[][] PyTorchReference(OptimizerOptions o)
    {
        int size = Start.Length;
        double[] w = Start.Select(v => (double)v).ToArray();
        double[] buffer = new double[size], m = new double[size], v = new double[size];
        var result = new double[StepGradients.Length][];
        for (int t = 1; t <= StepGradients.Length; t++)
        {
            for (int i = 0; i < size; i++)
            {
                double g = StepGradients[t - 1][i];
                if (i < 9)
                {
                    g += o.WeightDecay * w[i];
                }
                switch (o.Name)
                {
                    case "sgd":
                        w[i] -= o.LearningRate * g;
                        break;
                    case "momentum":
                        buffer[i] = t == 1 ? g : (o.Momentum * buffer[i]) + g;
                        w[i] -= o.LearningRate * buffer[i];
                        break;
                    case "nesterov":
                        buffer[i] = t == 1 ? g : (o.Momentum * buffer[i]) + g;
                        w[i] -= o.LearningRate * (g + (o.Momentum * buffer[i]));
                        break;
                    default:
                        m[i] = (o.Beta1 * m[i]) + ((1 - o.Beta1) * g);
                        v[i] = (o.Beta2 * v[i]) + ((1 - o.Beta2) * g * g);
                        double mHat = m[i] / (1 - Math.Pow(o.Beta1, t));
                        double vHat = v[i] / (1 - Math.Pow(o.Beta2, t));
                        w[i] -= o.LearningRate * mHat / (Math.Sqrt(vHat) + o.Epsilon);
                        break;
                }
            }
            result[t - 1] = (double[])w.Clone();
        }
        return result;
    }
}

public sealed class SlicedStepTests
{
    public static TheoryData<string> Names => new(OptimizerOptions.Names);

    /// <summary>
    /// A parameter server updates each chunk of the weights as soon as its gradients are in: the
    /// slices of a step must together be exactly one whole step, bit for bit, wherever the slices
    /// fall (here across tensor boundaries and off the vector width), with weight decay and state.
    /// </summary>
    [Theory]
    [MemberData(nameof(Names))]
    public void Steps_taken_slice_by_slice_equal_whole_steps_bit_for_bit(string name)
    {
        NamedParameter[] layout = [new("0.weight", 0, [37, 5], true), new("0.bias", 185, [37], false), new("1.weight", 222, [101], true)];
        var options = new OptimizerOptions { Name = name, LearningRate = 0.05f, Momentum = 0.9f, WeightDecay = 0.01f };
        var whole = Optimizer.Create(options, layout);
        var sliced = Optimizer.Create(options, layout);
        var random = new Cluster.Tensors.SeededRandom(5);
        float[] a = new float[323];
        foreach (ref float v in a.AsSpan())
        {
            v = random.NextGaussian();
        }
        float[] b = (float[])a.Clone();
        int[] cuts = [0, 13, 100, 185, 230, 300, 323];
        for (int step = 0; step < 4; step++)
        {
            float[] gradient = new float[a.Length];
            foreach (ref float v in gradient.AsSpan())
            {
                v = random.NextGaussian();
            }
            whole.Step(a, gradient);
            sliced.BeginStep();
            // Slices in backward order, as gradients arrive.
            for (int c = cuts.Length - 2; c >= 0; c--)
            {
                int from = cuts[c], length = cuts[c + 1] - cuts[c];
                sliced.StepSlice(from, b.AsSpan(from, length), gradient.AsSpan(from, length));
            }
        }
        Assert.Equal(a, b);
    }
}
