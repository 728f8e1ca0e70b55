using Cluster.Models;
using Cluster.Optim;
using static Cluster.Tests.Optim.OptimizerFixture;

namespace Cluster.Tests.Optim;

/// <summary>RMSprop, Adagrad and AdamW against PyTorch's update rules written out in double.</summary>
public sealed class OptimizerVariantTests
{
    private static readonly NamedParameter[] OneWeight = [new("0.weight", 0, [1], Decays: true)];

    public static TheoryData<string, float, float> Variants => new()
    {
        { "rmsprop", 0f, 0f }, { "rmsprop", 0.1f, 0f }, { "rmsprop", 0f, 0.9f }, { "rmsprop", 0.1f, 0.9f },
        { "adagrad", 0f, 0f }, { "adagrad", 0.1f, 0f },
        { "adamw", 0f, 0f }, { "adamw", 0.1f, 0f },
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void Three_steps_follow_the_pytorch_update_rule(string name, float weightDecay, float momentum)
    {
        var options = new OptimizerOptions { Name = name, LearningRate = 0.1f, WeightDecay = weightDecay };
        var optimizer = momentum > 0f ? new RmsProp(options, Layout, momentum) : Optimizer.Create(options, Layout);
        double[][] expected = PyTorchReference(options, momentum);
        OptimizerFixture.AssertFollows(optimizer, expected, $"{name} λ={weightDecay} μ={momentum}");
    }

    [Theory]
    [InlineData("rmsprop", 0f, 0f, 0.89532308f)] // v = 0.01·0.25 → √v = 0.05, step 0.1·0.5/0.05 = 1; then v = 0.012475, +0.1/0.1116915
    [InlineData("rmsprop", 0.9f, 0f, -0.00467674f)] // b = 10, then 0.9·10 − 1/0.1116915 = 0.0467674
    [InlineData("adagrad", 0f, 0.9f, 0.98944272f)] // s = 0.25 → step 0.1; s = 1.25 → +0.1/√1.25
    public void Two_steps_on_one_weight_match_hand_computed_values(string name, float momentum, float afterOne, float afterTwo)
    {
        var options = new OptimizerOptions { Name = name, LearningRate = 0.1f };
        var optimizer = momentum > 0f ? new RmsProp(options, OneWeight, momentum) : Optimizer.Create(options, OneWeight);
        float[] w = [1f];

        optimizer.Step(w, [0.5f]);
        Assert.Equal(afterOne, w[0], 1e-6f);

        optimizer.Step(w, [-1f]);
        Assert.Equal(afterTwo, w[0], 1e-6f);
    }

    [Fact]
    public void AdamW_decays_the_weight_then_takes_the_adam_step()
    {
        var optimizer = Optimizer.Create(new OptimizerOptions { Name = "adamw", LearningRate = 0.1f, WeightDecay = 0.1f }, OneWeight);
        float[] w = [1f];

        optimizer.Step(w, [0.5f]);
        Assert.Equal(0.89f, w[0], 1e-6f); // 1·(1 − 0.1·0.1) − 0.1·sign(0.5)

        optimizer.Step(w, [-1f]);
        Assert.Equal(0.91771035f, w[0], 1e-6f); // 0.89·0.99 + 0.03661035 (Adam's second step, as in OptimizerTests)
    }

    [Fact]
    public void AdamW_decay_leaves_biases_alone_and_differs_from_adam_with_l2()
    {
        var options = new OptimizerOptions { Name = "adamw", LearningRate = 0.1f, WeightDecay = 0.1f };
        var adamW = Optimizer.Create(options, Layout);
        var adamL2 = Optimizer.Create(options with { Name = "adam" }, Layout);
        float[] decoupled = Enumerable.Repeat(1f, 11).ToArray();
        float[] coupled = Enumerable.Repeat(1f, 11).ToArray();
        float[] zero = new float[11];

        adamW.Step(decoupled, zero);
        adamL2.Step(coupled, zero);

        // AdamW: a zero gradient gives a zero Adam step, so weights only shrink by 1 − ηλ; biases stay.
        Assert.All(decoupled[..9], w => Assert.Equal(0.99f, w, 1e-7f));
        Assert.All(decoupled[9..], b => Assert.Equal(1f, b));
        // Adam with L2: g = λw = 0.1 and the first Adam step is η·sign(g) = 0.1 for the weights.
        Assert.All(coupled[..9], w => Assert.Equal(0.9f, w, 1e-6f));
        Assert.All(coupled[9..], b => Assert.Equal(1f, b));
        Assert.All(zero, g => Assert.Equal(0f, g));
    }

    [Fact]
    public void Every_listed_name_creates_its_optimizer()
    {
        Assert.Equal(["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"], OptimizerOptions.Names);
        Assert.IsType<AdamW>(Optimizer.Create(new OptimizerOptions { Name = "adamw" }, Layout));
        Assert.IsType<Adagrad>(Optimizer.Create(new OptimizerOptions { Name = "adagrad" }, Layout));
        var rmsprop = Assert.IsType<RmsProp>(Optimizer.Create(new OptimizerOptions { Name = "rmsprop" }, Layout));
        Assert.Equal(0f, rmsprop.Momentum);
        Assert.Equal(0.99f, new OptimizerOptions().Alpha);
        Assert.Equal(1e-10f, Adagrad.DefaultEpsilon);
    }

    [Fact]
    public void Out_of_range_settings_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { Name = "rmsprop", Alpha = 1f }, Layout));
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { Name = "rmsprop", Alpha = -0.1f }, Layout));
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { Name = "rmsprop", Epsilon = 0f }, Layout));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RmsProp(new OptimizerOptions(), Layout, momentum: 1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Adagrad(new OptimizerOptions(), Layout, epsilon: 0f));
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { Name = "adamw", Beta2 = 1f }, Layout));
        Assert.Throws<ArgumentOutOfRangeException>(() => Optimizer.Create(new OptimizerOptions { Name = "adamw", WeightDecay = -1f }, Layout));
    }

    /// <summary>torch.optim.RMSprop, Adagrad and AdamW written out in double: the parameters after each of <see cref="StepGradients"/>.</summary>
    private static double[][] PyTorchReference(OptimizerOptions o, double momentum)
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
                bool decays = i < 9;
                switch (o.Name)
                {
                    case "rmsprop":
                        g += decays ? o.WeightDecay * w[i] : 0;
                        v[i] = (o.Alpha * v[i]) + ((1 - o.Alpha) * g * g);
                        double scaled = g / (Math.Sqrt(v[i]) + o.Epsilon);
                        if (momentum > 0)
                        {
                            buffer[i] = (momentum * buffer[i]) + scaled;
                            scaled = buffer[i];
                        }
                        w[i] -= o.LearningRate * scaled;
                        break;
                    case "adagrad":
                        g += decays ? o.WeightDecay * w[i] : 0;
                        v[i] += g * g;
                        w[i] -= o.LearningRate * g / (Math.Sqrt(v[i]) + 1e-10);
                        break;
                    default:
                        w[i] *= decays ? 1 - (o.LearningRate * o.WeightDecay) : 1;
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
