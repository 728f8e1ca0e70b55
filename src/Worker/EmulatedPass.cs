using System.Diagnostics;
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

    /// <summary>
    /// Runs the pass in place of forward/backward (scaling runs measure the wire and the server):
    /// waits as long as it takes, asking for each chunk's weights when the real forward first uses
    /// them and releasing each gradient chunk when the real backward makes it final; without a
    /// profile, all weights first and every gradient chunk at the end. Time spent waiting for
    /// weights delays the rest, as it would. Returns the loss it stands for (0).
    /// </summary>
    public float Run(ChunkLayout chunks, Action<int, int>? weightsNeeded, Action<float> lossKnown, Action<int> readyFrom)
    {
        long start = Stopwatch.GetTimestamp();
        double shift = 0;
        var neededMs = NeededMs;
        for (int k = 0; k < chunks.Count; k++)
        {
            PreciseSleep.Until(start, shift + (neededMs.Count == chunks.Count ? neededMs[k] : 0));
            if (weightsNeeded is not null)
            {
                long w = Stopwatch.GetTimestamp();
                var (offset, length) = chunks[k];
                weightsNeeded(offset, length);
                shift += TimeSplitClock.Since(w);
            }
        }
        PreciseSleep.Until(start, shift + ForwardMs);
        lossKnown(0f);
        var readyMs = ReadyMs;
        for (int k = readyMs.Count - 1; k >= 0; k--)
        {
            PreciseSleep.Until(start, shift + readyMs[k]);
            readyFrom(chunks[k].Offset);
        }
        PreciseSleep.Until(start, shift + ComputeMs);
        return 0f;
    }
}
