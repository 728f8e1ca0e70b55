using System.Globalization;
using Cluster.Data;

namespace Cluster.Checkpoints;

/// <summary>
/// The input normalisation a model was trained with, kept in its checkpoint's metadata so that
/// evaluation scales pixels the same way whichever data set it then reads.
/// </summary>
public static class NormalizationMetadata
{
    public const string MeanKey = "cluster.normalization.mean";
    public const string StdDevKey = "cluster.normalization.std";

    /// <summary>Metadata key of the epochs the run had done when the weights were saved.</summary>
    public const string EpochsKey = "cluster.epochs";

    /// <summary>
    /// The metadata of a trained model's checkpoint: the epoch its weights are from, their test
    /// accuracy, the run's seed and the input normalisation (which <see cref="Read"/> gives back).
    /// </summary>
    public static Dictionary<string, string> ForRun(int epoch, double testAccuracy, ulong seed, Normalization normalization) => new()
    {
        [EpochsKey] = epoch.ToString(CultureInfo.InvariantCulture),
        ["cluster.test_accuracy"] = testAccuracy.ToString("F4", CultureInfo.InvariantCulture),
        ["cluster.seed"] = seed.ToString(CultureInfo.InvariantCulture),
        [MeanKey] = normalization.Mean.ToString("R", CultureInfo.InvariantCulture),
        [StdDevKey] = normalization.StdDev.ToString("R", CultureInfo.InvariantCulture),
    };

    /// <summary>The stored normalisation, or null for a checkpoint without one.</summary>
    public static Normalization? Read(IReadOnlyDictionary<string, string> metadata, string path)
    {
        if (!metadata.TryGetValue(MeanKey, out var mean) || !metadata.TryGetValue(StdDevKey, out var std))
        {
            return null;
        }
        if (!float.TryParse(mean, NumberStyles.Float, CultureInfo.InvariantCulture, out float m)
            || !float.TryParse(std, NumberStyles.Float, CultureInfo.InvariantCulture, out float s) || !(s > 0f) || !float.IsFinite(m))
        {
            throw new CheckpointException($"checkpoint '{path}': metadata {MeanKey}='{mean}', {StdDevKey}='{std}' is not a finite mean and a positive standard deviation");
        }
        return new Normalization(m, s);
    }
}
