using Cluster.Wire;

namespace Cluster.Worker;

/// <summary>
/// The timetable of one emulated forward/backward pass (<c>--compute emulated</c>), in ms from its
/// start: when forward first uses each chunk's weights, when forward ends, when backward makes
/// each gradient chunk final, and when the pass ends. The profile a scaling run measures is for a
/// full batch; a shorter batch (the last of an epoch, when a worker's shard is not a multiple of
/// the batch) takes its share of that, as the engine's pass does: its time grows with the
/// images in the batch (a batch of 34 of lenet's 64 ran 0.55 of a full pass here).
/// </summary>
/// <param name="ComputeMs">The whole pass.</param>
/// <param name="ForwardMs">The end of forward (the loss is known).</param>
/// <param name="NeededMs">When forward first uses each chunk's weights, chunk 0 first; empty for all at the start.</param>
/// <param name="ReadyMs">When backward makes each chunk's gradient final, chunk 0 first; empty for all at the end.</param>
public sealed record EmulatedPass(double ComputeMs, double ForwardMs, IReadOnlyList<double> NeededMs, IReadOnlyList<double> ReadyMs)
{
    /// <summary>The pass for a batch of <paramref name="count"/> images under <paramref name="settings"/> (whose profile is for a batch of <c>settings.Batch</c>).</summary>
    public static EmulatedPass For(TrainingSettings settings, int count)
    {
        double share = settings.Batch > 0 ? Math.Clamp((double)count / settings.Batch, 0, 1) : 1;
        return new EmulatedPass(
            settings.EmulatedComputeMs * share,
            settings.EmulatedForwardMs * share,
            [.. settings.EmulatedChunkNeededMs.Select(ms => ms * share)],
            [.. settings.EmulatedChunkReadyMs.Select(ms => ms * share)]);
    }
}
