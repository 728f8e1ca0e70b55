namespace Cluster.ParameterServer;

/// <summary>
/// The weights of one version as raw little-endian float32 bytes, which pulls stream without
/// copying. A version may be sent while it is still being built: in synchronous mode the server
/// updates each chunk as soon as every worker's gradient for it is in, marks it ready, and pulls
/// already waiting for that version stream the chunks in the order they became ready.
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
    /// The chunk that became ready <paramref name="n"/>-th (from 0), once it has; -1 when the version
    /// will never be complete (the run ended while it was being built).
    /// </summary>
    public async ValueTask<int> ReadyChunkAsync(int n, CancellationToken cancel)
    {
        while (true)
        {
            Task wait;
            lock (_readiness)
            {
                if (n < _ready)
                {
                    return _readyOrder[n];
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
