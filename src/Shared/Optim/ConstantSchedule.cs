namespace Cluster.Optim;

/// <summary>The same rate every epoch: η(e) = η₀.</summary>
public sealed class ConstantSchedule : LearningRateSchedule
{
    /// <inheritdoc/>
    protected override float Rate(int epoch, float baseRate) => baseRate;
}
