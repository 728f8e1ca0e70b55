using Cluster.Models;
using Cluster.Optim;

namespace Cluster.Tests.Optim;

/// <summary>The small problem every optimizer test steps through, and the check against a reference trajectory.</summary>
internal static class OptimizerFixture
{
    /// <summary>A 3×3 weight (decays) and a bias of 2 (does not): 11 values, so vector loops and scalar tails both run.</summary>
    public static readonly NamedParameter[] Layout =
    [
        new("0.weight", 0, [3, 3], Decays: true),
        new("0.bias", 9, [2], Decays: false),
    ];

    public static readonly float[] Start = [1f, -2f, 0.5f, 0.25f, -0.75f, 1.5f, -1f, 2f, 0.1f, 1f, -0.3f];

    public static readonly float[][] StepGradients =
    [
        [0.5f, -2f, 0.1f, 1f, -0.3f, 0.02f, 3f, -1f, 0.7f, 0.5f, -0.6f],
        [-1f, -1.5f, 0.4f, -0.2f, 0.3f, 0.05f, 2f, 1f, -0.7f, -1f, 0.2f],
        [0.25f, 0.5f, -0.3f, 0.6f, 0.1f, -0.04f, -1f, 0.5f, 0.2f, 0.3f, 0.9f],
    ];

    /// <summary>Steps <paramref name="optimizer"/> through <see cref="StepGradients"/> from <see cref="Start"/> and asserts each step against <paramref name="expected"/>.</summary>
    public static void AssertFollows(Optimizer optimizer, double[][] expected, string label)
    {
        float[] parameters = (float[])Start.Clone();
        for (int step = 0; step < StepGradients.Length; step++)
        {
            optimizer.Step(parameters, StepGradients[step]);
            for (int i = 0; i < parameters.Length; i++)
            {
                Assert.True(Math.Abs(parameters[i] - expected[step][i]) <= 2e-6, $"{label} step {step + 1}, parameter {i}: {parameters[i]}, expected {expected[step][i]}");
            }
        }
        Assert.Equal(StepGradients.Length, optimizer.StepCount);
    }
}
