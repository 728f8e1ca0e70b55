namespace Cluster.Optim;

/// <summary>
/// Linear warm-up of W epochs before another schedule: η(e) = η₀ · (e + 1) / (W + 1) for e &lt; W,
/// then η(e) = inner(e − W), so the inner schedule starts at its own epoch 0 after the warm-up.
/// W = 0 is the inner schedule unchanged.
/// </summary>
public sealed class Warmup : LearningRateSchedule
{
    /// <summary>Creates the schedule; <paramref name="warmupEpochs"/> W ≥ 0.</summary>
    public Warmup(int warmupEpochs, LearningRateSchedule inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (warmupEpochs < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(warmupEpochs), $"warm-up {warmupEpochs} must be ≥ 0 epochs");
        }
        WarmupEpochs = warmupEpochs;
        Inner = inner;
    }

    /// <summary>The number W of warm-up epochs.</summary>
    public int WarmupEpochs { get; }

    /// <summary>The schedule that follows the warm-up.</summary>
    public LearningRateSchedule Inner { get; }

    /// <inheritdoc/>
    protected override float Rate(int epoch, float baseRate) => epoch < WarmupEpochs
        ? baseRate / (WarmupEpochs + 1) * (epoch + 1)
        : Inner.RateAt(epoch - WarmupEpochs, baseRate);
}
