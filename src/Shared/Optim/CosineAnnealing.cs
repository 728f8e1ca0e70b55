namespace Cluster.Optim;

/// <summary>
/// PyTorch's CosineAnnealingLR with T_max = T: η(e) = η_min + (η₀ − η_min) · (1 + cos(π·e/T)) / 2
/// for e ≤ T, so η(0) = η₀ and η(T) = η_min; after T the rate stays at η_min (PyTorch would
/// climb back up). Default η_min 0.
/// </summary>
public sealed class CosineAnnealing : LearningRateSchedule
{
    /// <summary>Creates the schedule; <paramref name="totalEpochs"/> T ≥ 1, <paramref name="minRate"/> η_min ≥ 0 (default 0).</summary>
    public CosineAnnealing(int totalEpochs, float minRate = 0f)
    {
        if (totalEpochs < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(totalEpochs), $"cosine annealing over {totalEpochs} epochs: must be ≥ 1");
        }
        if (!(minRate >= 0f) || float.IsInfinity(minRate))
        {
            throw new ArgumentOutOfRangeException(nameof(minRate), $"minimum rate {minRate} must be a number ≥ 0");
        }
        TotalEpochs = totalEpochs;
        MinRate = minRate;
    }

    /// <summary>The epoch T at which the rate reaches <see cref="MinRate"/>.</summary>
    public int TotalEpochs { get; }

    /// <summary>The final rate η_min.</summary>
    public float MinRate { get; }

    /// <inheritdoc/>
    protected override float Rate(int epoch, float baseRate)
    {
        double progress = Math.Min(epoch, TotalEpochs) / (double)TotalEpochs;
        return (float)(MinRate + ((baseRate - MinRate) * (1 + Math.Cos(Math.PI * progress)) / 2));
    }
}
