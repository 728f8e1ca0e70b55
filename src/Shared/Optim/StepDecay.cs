namespace Cluster.Optim;

/// <summary>
/// PyTorch's StepLR: η(e) = η₀ · γ^⌊e / k⌋, so the rate is multiplied by γ every k epochs
/// (k = 2, γ = 0.5 gives 1, 1, 0.5, 0.5, 0.25, … × η₀).
/// </summary>
public sealed class StepDecay : LearningRateSchedule
{
    /// <summary>Creates the schedule; <paramref name="stepSize"/> k ≥ 1, 0 &lt; <paramref name="gamma"/> γ ≤ 1.</summary>
    public StepDecay(int stepSize, float gamma)
    {
        if (stepSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(stepSize), $"step size {stepSize} must be ≥ 1 epoch");
        }
        if (!(gamma is > 0f and <= 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(gamma), $"gamma {gamma} must satisfy 0 < gamma ≤ 1");
        }
        StepSize = stepSize;
        Gamma = gamma;
    }

    /// <summary>Epochs k between decays.</summary>
    public int StepSize { get; }

    /// <summary>The factor γ applied every <see cref="StepSize"/> epochs.</summary>
    public float Gamma { get; }

    /// <inheritdoc/>
    protected override float Rate(int epoch, float baseRate) => (float)(baseRate * Math.Pow(Gamma, epoch / StepSize));
}
