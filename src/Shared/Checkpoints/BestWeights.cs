namespace Cluster.Checkpoints;

/// <summary>
/// The best weights of a run with early stopping, as a checkpoint to resume from carries them:
/// the epoch whose validation accuracy was the best so far, that accuracy, and the model's
/// parameters and state then, in the layout of <see cref="Models.Sequential.SavedTensors"/>.
/// </summary>
public sealed record BestWeights(int Epoch, double ValidationAccuracy, float[] Saved);
