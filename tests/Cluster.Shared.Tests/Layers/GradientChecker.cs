using Cluster.Layers;
using Cluster.Tensors;

namespace Cluster.Tests.Layers;

/// <summary>
/// Checks a layer's backward pass against central differences of the scalar loss L = Σ y·r,
/// where r is a fixed random tensor of the output's shape, so that dL/dy = r. The layer is built,
/// given its own parameter and gradient buffers (random weights and biases) and allocated here.
/// </summary>
internal sealed class GradientChecker
{
    private readonly ulong? _dropoutSeed;

    /// <param name="layer">A fresh layer.</param>
    /// <param name="batch">Samples in the batch.</param>
    /// <param name="inputShape">Per-sample input shape.</param>
    /// <param name="input">Fills the input given its element count (see <see cref="SmoothInput"/> and friends).</param>
    /// <param name="seed">Fixes the weights, the input and r.</param>
    /// <param name="dropoutSeed">When set, the layer is re-seeded with it before every forward pass, so a dropout mask stays fixed.</param>
    public GradientChecker(Layer layer, int batch, int[] inputShape, Func<Random, int, float[]> input, int seed, ulong? dropoutSeed = null)
    {
        Layer = layer;
        _dropoutSeed = dropoutSeed;
        var random = new Random(seed);
        layer.Build(inputShape);
        int total = layer.Parameters.Sum(p => Tensor.Product(p.Shape));
        Parameters = Uniform(random, total, 0.5f);
        Gradients = new float[total];
        var weights = new Tensor[layer.Parameters.Count];
        var grads = new Tensor[weights.Length];
        int offset = 0;
        for (int i = 0; i < weights.Length; i++)
        {
            int[] shape = layer.Parameters[i].Shape;
            weights[i] = new Tensor(Parameters, offset, shape);
            grads[i] = new Tensor(Gradients, offset, shape);
            offset += Tensor.Product(shape);
        }
        layer.Bind(weights, grads);
        layer.Allocate(batch);
        int[] xShape = [batch, .. inputShape];
        int[] yShape = [batch, .. layer.OutputShape];
        X = Tensor.FromValues(input(random, Tensor.Product(xShape)), xShape);
        Y = Tensor.Zeros(yShape);
        R = Tensor.FromValues(Uniform(random, Tensor.Product(yShape), 1f), yShape);
        Dx = Tensor.Zeros(xShape);
    }

    public Layer Layer { get; }

    /// <summary>Parameters whose gradient is legitimately zero (a bias in front of a batch norm): exempt from the "proves nothing" guard.</summary>
    public Func<string, bool> MayBeZero { get; set; } = _ => false;

    /// <summary>The layer's parameters, back to back in the order of <see cref="Layer.Parameters"/>.</summary>
    public float[] Parameters { get; }

    /// <summary>The layer's parameter gradients, laid out as <see cref="Parameters"/>.</summary>
    public float[] Gradients { get; }

    public Tensor X { get; }

    public Tensor Y { get; }

    /// <summary>The weights of the loss, which is also dL/dy.</summary>
    public Tensor R { get; }

    public Tensor Dx { get; }

    /// <summary>Uniform values in [-1, 1]: for smooth layers.</summary>
    public static float[] SmoothInput(Random random, int count) => Uniform(random, count, 1f);

    /// <summary>Uniform values in [-1, 1] without any in (-0.05, 0.05): keeps ReLU-like kinks out of reach of ε = 1e-2.</summary>
    public static float[] AwayFromZero(Random random, int count)
    {
        float[] values = Uniform(random, count, 1f);
        for (int i = 0; i < count; i++)
        {
            while (MathF.Abs(values[i]) < 0.05f)
            {
                values[i] = (float)((random.NextDouble() * 2) - 1);
            }
        }
        return values;
    }

    /// <summary>Distinct values 0.05 apart in a random order: no two cells of a pooling window tie or swap under ε = 1e-2.</summary>
    public static float[] Distinct(Random random, int count)
    {
        int[] order = Enumerable.Range(0, count).ToArray();
        random.Shuffle(order);
        return order.Select(i => (i - (count / 2)) * 0.05f).ToArray();
    }

    public static float[] Uniform(Random random, int count, float scale)
    {
        float[] values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)(((random.NextDouble() * 2) - 1) * scale);
        }
        return values;
    }

    /// <summary>Runs the forward pass (in training mode) and returns L = Σ y·r.</summary>
    public double Loss()
    {
        if (_dropoutSeed is ulong seed)
        {
            Layer.Seed(seed);
        }
        Layer.Forward(X, Y, training: true);
        double sum = 0;
        var y = Y.Span;
        var r = R.Span;
        for (int i = 0; i < y.Length; i++)
        {
            sum += (double)y[i] * r[i];
        }
        return sum;
    }

    /// <summary>Forward then backward with dy = r; dx is filled with NaN first so that an unwritten element shows.</summary>
    public void ForwardBackward()
    {
        Loss();
        Dx.Span.Fill(float.NaN);
        Layer.Backward(X, Y, R, Dx);
    }

    /// <summary>Asserts dL/dx and every dL/dθ agree with central differences; returns the worst error found, for information.</summary>
    public double AssertGradients(float epsilon, double tolerance)
    {
        Array.Clear(Gradients);
        ForwardBackward();
        float[] inputGradient = Dx.Span.ToArray();
        float[] parameterGradient = (float[])Gradients.Clone();
        double worst = AssertMatches("input", X.Data, inputGradient, epsilon, tolerance);
        for (int i = 0, offset = 0; i < Layer.Parameters.Count; i++)
        {
            var spec = Layer.Parameters[i];
            int length = Tensor.Product(spec.Shape);
            worst = Math.Max(worst, AssertMatches(spec.Name, Parameters, parameterGradient, epsilon, tolerance, offset, length));
            offset += length;
        }
        return worst;
    }

    private double AssertMatches(string what, float[] values, float[] analytic, float epsilon, double tolerance, int offset = 0, int length = -1)
    {
        if (length < 0)
        {
            length = values.Length;
        }
        double worst = 0, largest = 0;
        for (int i = 0; i < length; i++)
        {
            double numeric = NumericDerivative(values, offset + i, epsilon, Loss);
            double error = Math.Abs(analytic[offset + i] - numeric) / Math.Max(1, Math.Abs(numeric));
            largest = Math.Max(largest, Math.Abs(numeric));
            worst = Math.Max(worst, error);
            Assert.True(error <= tolerance, $"{Layer.Spec} on {X}: d/d{what}[{i}] is {analytic[offset + i]} but central differences give {numeric}");
        }
        // Guard against a vacuous pass where every derivative is zero.
        Assert.True(length == 0 || largest > 0.05 || MayBeZero(what), $"{Layer.Spec}: every d/d{what} is about zero, the check proves nothing");
        return worst;
    }

    /// <summary>(f(v + ε) − f(v − ε)) / (the step actually taken in float), restoring the value afterwards.</summary>
    public static double NumericDerivative(float[] values, int index, float epsilon, Func<double> f)
    {
        float original = values[index];
        float up = original + epsilon, down = original - epsilon;
        values[index] = up;
        double fUp = f();
        values[index] = down;
        double fDown = f();
        values[index] = original;
        return (fUp - fDown) / ((double)up - down);
    }
}
