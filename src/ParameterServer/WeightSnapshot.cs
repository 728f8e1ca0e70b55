namespace Cluster.ParameterServer;

/// <summary>
/// The weights of one version as raw little-endian float32 bytes, which pulls stream without
/// copying. A version may be sent while it is still being built: in synchronous mode the server
/// updates each chunk as soon as every worker's gradient for it is in, marks it ready, and pulls
/// already waiting for that version stream its ready chunks lowest index first (the order forward
/// needs them in), so the first layers' chunk, final last, overtakes the later layers' still unsent.
/// Reference-counted: the store reuses the buffer once no pull holds it and a newer version has
/// been published, so publishing a version allocates nothing in steady state.
/// </summary>
public sealed class WeightSnapshot
{
    private readonly ParameterStore _owner;
    private readonly int[] _readyOrder;
    private readonly object _readiness = new();
    private int _references;
    private int _ready;
    private bool _abandoned;
    private TaskCompletionSource? _chunkReady;

    internal WeightSnapshot(ParameterStore owner, int floats, int chunks)
    {
        _owner = owner;
        Bytes = new byte[checked(floats * sizeof(float))];
        _readyOrder = new int[chunks];
    }

    /// <summary>The version these weights are.</summary>
    public long Version { get; internal set; }

    /// <summary>The weights as bytes.</summary>
    public byte[] Bytes { get; }

    /// <summary>Chunks on the wire.</summary>
    public int ChunkCount => _readyOrder.Length;

    /// <summary>
    /// One pull's chunks of this version that are final and not yet sent, lowest index first.
    /// Lowest first because chunk order is the order forward uses the weights in: in sync mode the
    /// first layers' gradients are final last, and a pull still sending later layers' chunks then
    /// sends the first layers' next, as soon as its current chunk is written, instead of after
    /// every chunk queued before it.
    /// </summary>
    public sealed class ChunkQueue
    {
        internal int Seen;
        internal readonly PriorityQueue<int, int> Ready = new();
    }

    /// <summary>
    /// The next chunk of <paramref name="queue"/>, once one is final; -1 when there will be none
    /// (the run ended while the version was being built).
    /// </summary>
    public async ValueTask<int> NextChunkAsync(ChunkQueue queue, CancellationToken cancel)
    {
        while (true)
        {
            Task wait;
            lock (_readiness)
            {
                while (queue.Seen < _ready)
                {
                    int chunk = _readyOrder[queue.Seen++];
                    queue.Ready.Enqueue(chunk, chunk);
                }
                if (queue.Ready.TryDequeue(out int next, out _))
                {
                    return next;
                }
                if (_abandoned)
                {
                    return -1;
                }
                _chunkReady ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _chunkReady.Task;
            }
            await wait.WaitAsync(cancel).ConfigureAwait(false);
        }
    }

    /// <summary>Starts a new version: no chunk is ready.</summary>
    internal void BeginFilling()
    {
        lock (_readiness)
        {
            _ready = 0;
            _abandoned = false;
        }
    }

    /// <summary>Chunk <paramref name="chunk"/> holds its final values for this version.</summary>
    internal void MarkReady(int chunk)
    {
        lock (_readiness)
        {
            _readyOrder[_ready++] = chunk;
        }
        Wake();
    }

    /// <summary>Every chunk holds its final values (a version written whole).</summary>
    internal void MarkAllReady()
    {
        lock (_readiness)
        {
            for (int i = 0; i < _readyOrder.Length; i++)
            {
                _readyOrder[i] = i;
            }
            _ready = _readyOrder.Length;
        }
        Wake();
    }

    /// <summary>The version will not be completed; waiting pulls are released.</summary>
    internal void Abandon()
    {
        lock (_readiness)
        {
            _abandoned = true;
        }
        Wake();
    }

    private void Wake()
    {
        TaskCompletionSource? woken;
        lock (_readiness)
        {
            woken = _chunkReady;
            _chunkReady = null;
        }
        woken?.TrySetResult();
    }

    internal void AddReference() => Interlocked.Increment(ref _references);

    /// <summary>Gives the snapshot back; the last release of a superseded version recycles the buffer.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            _owner.Recycle(this);
        }
    }
}
