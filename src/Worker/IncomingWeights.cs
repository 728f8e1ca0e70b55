using System.Diagnostics;
using Cluster.Wire;

namespace Cluster.Worker;

/// <summary>
/// Weights of one pull, arriving chunk by chunk in the background: <see cref="WaitFor"/> blocks
/// the compute thread only until the chunks it is about to use are in.
/// </summary>
public sealed class IncomingWeights
{
    private readonly ChunkLayout _chunks;
    private Task<PullResult> _reading = Task.FromResult(new PullResult(-1, false, 0));

    internal IncomingWeights(ChunkLayout chunks)
    {
        _chunks = chunks;
        Received = new bool[chunks.Count];
    }

    /// <summary>The reading of the whole pull; its result once every chunk is in.</summary>
    public Task<PullResult> Reading => _reading;

    internal bool[] Received { get; }

    internal SemaphoreSlim Arrived { get; } = new(0);

    internal Task<PullResult> Start(Task<PullResult> reading)
    {
        _reading = reading;
        // A failed pull wakes the waiter too, which then throws its error.
        _ = reading.ContinueWith(_ => Arrived.Release(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return reading;
    }

    /// <summary>
    /// Blocks until every chunk holding floats [<paramref name="offset"/>, offset + length) has
    /// arrived; returns how long it waited, in ms. Throws what the pull failed with.
    /// </summary>
    public double WaitFor(int offset, int length)
    {
        long start = Stopwatch.GetTimestamp();
        int first = _chunks.IndexOf(offset), last = _chunks.IndexOf(offset + Math.Max(1, length) - 1);
        while (!AllArrived(first, last))
        {
            if (_reading.IsCompleted)
            {
                // Throws the pull's error. The last chunk may have arrived, and the pull ended,
                // since the check above: a pull that ended without error has every chunk.
                _reading.GetAwaiter().GetResult();
                if (!AllArrived(first, last))
                {
                    throw new InvalidDataException($"pull ended without chunks {first} to {last}");
                }
                break;
            }
            Arrived.Wait();
        }
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    private bool AllArrived(int first, int last)
    {
        for (int i = first; i <= last; i++)
        {
            if (!Volatile.Read(ref Received[i]))
            {
                return false;
            }
        }
        return true;
    }
}
