using System.Globalization;
using System.Runtime.Intrinsics;
using Cluster.Models;
using Cluster.Tensors;

namespace Cluster.Layers;

/// <summary>
/// Batch normalisation (Ioffe &amp; Szegedy), per channel: in training, x̂ = (x − μ_B)/√(σ²_B + ε)
/// with the batch's mean and (biased) variance, y = γ·x̂ + β, and running estimates updated as
/// r ← (1 − momentum)·r + momentum·stat (the variance unbiased, as PyTorch does); in evaluation the
/// running estimates replace the batch's. Backward (training):
/// dx = γ/(m·√(σ²+ε)) · (m·dy − Σdy − x̂·Σ(dy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy, sums over the m values of a channel.
/// <see cref="BatchNorm2D"/> normalises each channel over N×H×W; <see cref="BatchNorm1D"/> each feature over N.
/// </summary>
public abstract class BatchNorm : Layer
{
    private float[] _normalized = [];
    private float[] _invStd = [];
    private Tensor? _x, _y, _dy, _dx;
    private bool _lastTraining;
    private readonly Action<int, int> _forward, _backward;

    /// <summary>Creates the layer; <paramref name="momentum"/> in (0, 1], <paramref name="epsilon"/> &gt; 0.</summary>
    protected BatchNorm(float momentum, float epsilon)
    {
        if (!(momentum > 0f && momentum <= 1f) || !(epsilon > 0f))
        {
            throw new ModelSpecException($"batch norm needs 0 < momentum ≤ 1 and eps > 0; got momentum={momentum} eps={epsilon}");
        }
        Momentum = momentum;
        Epsilon = epsilon;
        _forward = ForwardChannels;
        _backward = BackwardChannels;
    }

    /// <summary>Weight of the newest batch in the running estimates. Default 0.1.</summary>
    public float Momentum { get; }

    /// <summary>Added to the variance. Default 1e-5.</summary>
    public float Epsilon { get; }

    /// <summary>Channels (or features) normalised separately.</summary>
    public int Channels => InputShape[0];

    /// <summary>Values per channel per sample: H×W, or 1 for features.</summary>
    protected abstract int Spatial { get; }

    private Tensor _runningMean = Tensor.Zeros(0);
    private Tensor _runningVariance = Tensor.Zeros(0);

    /// <summary>The running mean per channel (used in evaluation).</summary>
    public Span<float> RunningMean => _runningMean.Span;

    /// <summary>The running variance per channel (used in evaluation).</summary>
    public Span<float> RunningVariance => _runningVariance.Span;

    /// <inheritdoc/>
    public override IReadOnlyList<ParameterSpec> StateSpecs =>
    [
        new("running_mean", [Channels], Initializer.Zeros, 1, 1, Decays: false),
        new("running_var", [Channels], Initializer.Ones, 1, 1, Decays: false),
    ];

    /// <inheritdoc/>
    public override void BindState(Tensor[] state)
    {
        state[0].Span.Clear();
        state[1].Span.Fill(1f);
        _runningMean = state[0];
        _runningVariance = state[1];
    }

    /// <inheritdoc/>
    public override string Spec =>
        Kind + (Momentum != 0.1f ? " momentum=" + Momentum.ToString(CultureInfo.InvariantCulture) : "")
        + (Epsilon != 1e-5f ? " eps=" + Epsilon.ToString(CultureInfo.InvariantCulture) : "");

    /// <inheritdoc/>
    public override IReadOnlyList<ParameterSpec> Parameters =>
    [
        new("weight", [Channels], Initializer.Ones, 1, 1, Decays: false),
        new("bias", [Channels], Initializer.Zeros, 1, 1, Decays: false),
    ];

    /// <summary>Checks the input's rank; called from shape inference.</summary>
    protected void InitializeStatistics(int channels)
    {
        _runningMean = Tensor.Zeros(channels);
        _runningVariance = Tensor.FromValues(Enumerable.Repeat(1f, channels).ToArray(), channels);
    }

    /// <inheritdoc/>
    public override void Allocate(int maxBatch)
    {
        int needed = maxBatch * Tensor.Product(InputShape);
        if (_normalized.Length < needed)
        {
            _normalized = new float[needed];
        }
        if (_invStd.Length < Channels)
        {
            _invStd = new float[Channels];
        }
    }

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y, bool training)
    {
        _x = x;
        _y = y;
        _lastTraining = training;
        Team.For(Channels, _forward);
    }

    /// <inheritdoc/>
    public override void Backward(Tensor x, Tensor y, Tensor dy, Tensor? dx)
    {
        _x = x;
        _dy = dy;
        _dx = dx;
        Team.For(Channels, _backward);
    }

    private void ForwardChannels(int start, int end)
    {
        var x = _x!;
        int batch = x.BatchSize, s = Spatial, stride = Channels * s;
        int m = batch * s;
        var gamma = Weights[0].Span;
        var beta = Weights[1].Span;
        var runningMean = RunningMean;
        var runningVariance = RunningVariance;
        for (int c = start; c < end; c++)
        {
            float mean, invStd;
            if (_lastTraining)
            {
                double sum = 0, sumSquares = 0;
                for (int n = 0; n < batch; n++)
                {
                    var plane = x.Data.AsSpan(x.Offset + n * stride + c * s, s);
                    sum += TensorPrimitives.Sum(plane);
                    sumSquares += TensorPrimitives.SumOfSquares(plane);
                }
                double mu = sum / m;
                double variance = Math.Max(0, sumSquares / m - mu * mu);
                mean = (float)mu;
                invStd = (float)(1.0 / Math.Sqrt(variance + Epsilon));
                double unbiased = m > 1 ? variance * m / (m - 1) : variance;
                runningMean[c] = (1 - Momentum) * runningMean[c] + Momentum * mean;
                runningVariance[c] = (float)((1 - Momentum) * runningVariance[c] + Momentum * unbiased);
            }
            else
            {
                mean = runningMean[c];
                invStd = 1f / MathF.Sqrt(runningVariance[c] + Epsilon);
            }
            _invStd[c] = invStd;
            for (int n = 0; n < batch; n++)
            {
                int offset = n * stride + c * s;
                Normalize(x.Data.AsSpan(x.Offset + offset, s), mean, invStd, gamma[c], beta[c], _normalized.AsSpan(offset, s), _y!.Data.AsSpan(_y.Offset + offset, s));
            }
        }
    }

    private void BackwardChannels(int start, int end)
    {
        var dy = _dy!;
        int batch = dy.BatchSize, s = Spatial, stride = Channels * s;
        int m = batch * s;
        var gamma = Weights[0].Span;
        var gammaGrad = Gradients[0].Span;
        var betaGrad = Gradients[1].Span;
        for (int c = start; c < end; c++)
        {
            double sumDy = 0, sumDyNormalized = 0;
            for (int n = 0; n < batch; n++)
            {
                int offset = n * stride + c * s;
                var g = dy.Data.AsSpan(dy.Offset + offset, s);
                sumDy += TensorPrimitives.Sum(g);
                sumDyNormalized += TensorPrimitives.Dot(g, _normalized.AsSpan(offset, s));
            }
            gammaGrad[c] += (float)sumDyNormalized;
            betaGrad[c] += (float)sumDy;
            if (_dx is null)
            {
                continue;
            }
            float scale = gamma[c] * _invStd[c];
            for (int n = 0; n < batch; n++)
            {
                int offset = n * stride + c * s;
                var g = dy.Data.AsSpan(dy.Offset + offset, s);
                var d = _dx.Data.AsSpan(_dx.Offset + offset, s);
                if (_lastTraining)
                {
                    // dx = γ·invStd·(dy − mean(dy) − x̂·mean(dy·x̂))
                    InputGradient(g, _normalized.AsSpan(offset, s), scale, (float)(-sumDy / m), (float)(-sumDyNormalized / m), d);
                }
                else
                {
                    TensorPrimitives.Multiply(g, scale, d);
                }
            }
        }
    }

    /// <summary>x̂ = (x − mean)·invStd and y = γ·x̂ + β in one pass over the plane.</summary>
    private static void Normalize(ReadOnlySpan<float> x, float mean, float invStd, float gamma, float beta, Span<float> normalized, Span<float> y)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vMean = Vector256.Create(mean);
            var vInvStd = Vector256.Create(invStd);
            var vGamma = Vector256.Create(gamma);
            var vBeta = Vector256.Create(beta);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var n = (Vector256.Create(x.Slice(i, Vector256<float>.Count)) - vMean) * vInvStd;
                n.CopyTo(normalized.Slice(i, Vector256<float>.Count));
                Vector256.FusedMultiplyAdd(n, vGamma, vBeta).CopyTo(y.Slice(i, Vector256<float>.Count));
            }
        }
        for (; i < x.Length; i++)
        {
            float n = (x[i] - mean) * invStd;
            normalized[i] = n;
            y[i] = MathF.FusedMultiplyAdd(n, gamma, beta);
        }
    }

    /// <summary>dx = scale·(dy + meanTerm + x̂·correlationTerm) in one pass over the plane.</summary>
    private static void InputGradient(ReadOnlySpan<float> dy, ReadOnlySpan<float> normalized, float scale, float meanTerm, float correlationTerm, Span<float> dx)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vScale = Vector256.Create(scale);
            var vMean = Vector256.Create(meanTerm);
            var vCorrelation = Vector256.Create(correlationTerm);
            for (; i <= dy.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var sum = Vector256.FusedMultiplyAdd(Vector256.Create(normalized.Slice(i, Vector256<float>.Count)), vCorrelation, Vector256.Create(dy.Slice(i, Vector256<float>.Count)) + vMean);
                (sum * vScale).CopyTo(dx.Slice(i, Vector256<float>.Count));
            }
        }
        for (; i < dy.Length; i++)
        {
            dx[i] = scale * MathF.FusedMultiplyAdd(normalized[i], correlationTerm, dy[i] + meanTerm);
        }
    }
}

/// <summary>Batch normalisation of each channel of C×H×W images over the batch and the image.</summary>
public sealed class BatchNorm2D(float momentum = 0.1f, float epsilon = 1e-5f) : BatchNorm(momentum, epsilon)
{
    /// <inheritdoc/>
    public override string Kind => "batchnorm2d";

    /// <inheritdoc/>
    protected override int Spatial => InputShape[1] * InputShape[2];

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input)
    {
        if (input.Length != 3)
        {
            throw new ModelSpecException($"batchnorm2d takes C×H×W images but gets shape {Tensor.ShapeText(input)}: use batchnorm1d for features");
        }
        InitializeStatistics(input[0]);
        return input;
    }
}

/// <summary>Batch normalisation of each feature over the batch.</summary>
public sealed class BatchNorm1D(float momentum = 0.1f, float epsilon = 1e-5f) : BatchNorm(momentum, epsilon)
{
    /// <inheritdoc/>
    public override string Kind => "batchnorm1d";

    /// <inheritdoc/>
    protected override int Spatial => 1;

    /// <inheritdoc/>
    protected override int[] InferOutputShape(int[] input)
    {
        if (input.Length != 1)
        {
            throw new ModelSpecException($"batchnorm1d takes flat features but gets shape {Tensor.ShapeText(input)}: use batchnorm2d for images");
        }
        InitializeStatistics(input[0]);
        return input;
    }
}
