namespace Cluster.ParameterServer.Rules;

/// <summary>
/// Asynchronous SGD (Downpour): every gradient is applied the moment it arrives, however many
/// updates other workers made since it pulled; that number, its staleness, is recorded.
/// </summary>
public sealed class AsyncRule(ParameterStore store, GradientPool pool, RunRecorder recorder)
    : ConsistencyRule(store, pool, recorder)
{
    /// <inheritdoc/>
    public override string Name => "async";

    /// <inheritdoc/>
    public override Task<WeightSnapshot> AcquireForPullAsync(int worker, long minVersion, CancellationToken cancel) =>
        Task.FromResult(Store.Acquire());

    /// <inheritdoc/>
    public override PushOutcome Submit(Gradient gradient)
    {
        lock (Gate)
        {
            if (Finished)
            {
                Pool.Return(gradient.Values);
                return PushOutcome.DroppedLate;
            }
            Span<long> staleness = [Store.Version - gradient.BaseVersion];
            Recorder.RecordApplied(gradient.Samples, gradient.Loss, staleness, gradient.Worker);
            ApplyUpdate(gradient.Values, gradient.Samples, gradient.Loss, 1);
            Pool.Return(gradient.Values);
        }
        return PushOutcome.Applied;
    }
}
