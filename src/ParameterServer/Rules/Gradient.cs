namespace Cluster.ParameterServer.Rules;

/// <summary>A complete, validated gradient from one worker, in a buffer rented from the <see cref="GradientPool"/>.</summary>
/// <param name="Worker">The worker's rank.</param>
/// <param name="Step">The worker's own step counter.</param>
/// <param name="BaseVersion">The weights version it was computed from.</param>
/// <param name="Values">The gradient; the rule returns the buffer to the pool when done with it.</param>
/// <param name="Loss">The batch's mean loss.</param>
/// <param name="Samples">Samples in the batch.</param>
public sealed record Gradient(int Worker, long Step, long BaseVersion, float[] Values, float Loss, int Samples);

/// <summary>What became of a push.</summary>
public enum PushOutcome
{
    /// <summary>The update was applied (in sync mode: it completed the step).</summary>
    Applied,

    /// <summary>Accepted and waiting: for the other workers of the step (sync) or for a slower worker (ssp).</summary>
    Queued,

    /// <summary>Arrived after its step was complete (sync with backup workers) and was dropped.</summary>
    DroppedLate,

    /// <summary>A second push of the same step from the same worker; ignored.</summary>
    Duplicate,
}

/// <summary>Buffers for incoming gradients, reused so that a push allocates nothing in steady state.</summary>
public sealed class GradientPool(int size)
{
    private readonly Stack<float[]> _free = new();

    /// <summary>Floats per buffer.</summary>
    public int Size => size;

    /// <summary>A buffer of <see cref="Size"/> floats (contents undefined).</summary>
    public float[] Rent()
    {
        lock (_free)
        {
            return _free.Count > 0 ? _free.Pop() : new float[size];
        }
    }

    /// <summary>Gives a buffer back.</summary>
    public void Return(float[] buffer)
    {
        lock (_free)
        {
            _free.Push(buffer);
        }
    }
}
