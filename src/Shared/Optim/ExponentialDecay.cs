namespace Cluster.Optim;

/// <summary>PyTorch's ExponentialLR: η(e) = η₀ · γᵉ.</summary>
public sealed class ExponentialDecay : LearningRateSchedule
{
    /// <summary>Creates the schedule; 0 &lt; <paramref name="gamma"/> γ ≤ 1.</summary>
    public ExponentialDecay(float gamma)
    {
        if (!(gamma is > 0f and <= 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(gamma), $"gamma {gamma} must satisfy 0 < gamma ≤ 1");
        }
        Gamma = gamma;
    }

    /// <summary>The factor γ applied every epoch.</summary>
    public float Gamma { get; }

    /// <inheritdoc/>
    protected override float Rate(int epoch, float baseRate) => (float)(baseRate * Math.Pow(Gamma, epoch));
}
