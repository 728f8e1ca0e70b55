using System.Runtime.InteropServices;
using Cluster.Optim;
using Cluster.Wire;

namespace Cluster.ParameterServer;

/// <summary>
/// The authoritative weights, the optimizer that updates them and the version counter. Every
/// update publishes a new <see cref="WeightSnapshot"/>; the weights are never visible half-updated
/// as a published version. An update is either applied whole (<see cref="Apply"/>) or chunk by
/// chunk (<see cref="BeginUpdate"/>, <see cref="ApplyChunk"/>, <see cref="EndUpdate"/>), in which
/// case the version being built can be streamed chunk by chunk as its chunks become final.
/// Not thread-safe on its own: the consistency rule serialises the updates.
/// </summary>
public sealed class ParameterStore
{
    /// <summary>Floats per chunk on the wire unless the server is told otherwise: 65,536 (256 KiB).</summary>
    public const int DefaultChunkFloats = 64 * 1024;

    private readonly float[] _weights;
    private readonly Optimizer _optimizer;
    private readonly Stack<WeightSnapshot> _free = new();
    private readonly object _snapshotLock = new();
    private WeightSnapshot _current;
    private WeightSnapshot? _building;
    private float[] _clipped = [];

    /// <summary>Starts from <paramref name="initial"/> weights at version 0, sent in <paramref name="chunks"/> (by default equal chunks of <see cref="DefaultChunkFloats"/>).</summary>
    public ParameterStore(ReadOnlySpan<float> initial, Optimizer optimizer, ChunkLayout? chunks = null)
    {
        _weights = initial.ToArray();
        _optimizer = optimizer;
        Chunks = chunks ?? ChunkLayout.Uniform(_weights.Length, DefaultChunkFloats);
        if (Chunks.Size != _weights.Length)
        {
            throw new ArgumentException($"a chunk layout of {Chunks.Size} floats does not fit {_weights.Length} weights", nameof(chunks));
        }
        _current = NewSnapshot();
        MemoryMarshal.AsBytes(_weights.AsSpan()).CopyTo(_current.Bytes);
        _current.MarkAllReady();
        _current.AddReference();
    }

    /// <summary>Number of parameters.</summary>
    public int Size => _weights.Length;

    /// <summary>How the weights are cut into chunks on the wire.</summary>
    public ChunkLayout Chunks { get; }

    /// <summary>Chunks a gradient or a version is sent in.</summary>
    public int ChunkCount => Chunks.Count;

    /// <summary>Whether a version is being built chunk by chunk (<see cref="BeginUpdate"/> called, not yet published).</summary>
    public bool IsUpdating => _building is not null;

    /// <summary>The latest published version (the number of updates applied).</summary>
    public long Version => Volatile.Read(ref _current).Version;

    /// <summary>When set, each aggregated gradient is scaled down to this global L2 norm before the update (as <c>train --clip-norm</c>).</summary>
    public float? ClipNorm { get; init; }

    /// <summary>The optimizer (its learning rate may be changed between updates).</summary>
    public Optimizer Optimizer => _optimizer;

    /// <summary>The offset and length of chunk <paramref name="index"/> in the flat vector.</summary>
    public (int Offset, int Length) Chunk(int index) => Chunks[index];

    /// <summary>The latest snapshot, with a reference the caller must <see cref="WeightSnapshot.Release"/>.</summary>
    public WeightSnapshot Acquire()
    {
        lock (_snapshotLock)
        {
            _current.AddReference();
            return _current;
        }
    }

    /// <summary>
    /// The version being built, if it is <paramref name="version"/>, with a reference the caller
    /// must release; its chunks are sent as they become ready. Null otherwise.
    /// </summary>
    public WeightSnapshot? AcquireBuilding(long version)
    {
        lock (_snapshotLock)
        {
            if (_building is null || _building.Version != version)
            {
                return null;
            }
            _building.AddReference();
            return _building;
        }
    }

    /// <summary>Copies the current weights (for evaluation or a checkpoint).</summary>
    public void CopyWeights(Span<float> destination)
    {
        var snapshot = Acquire();
        try
        {
            MemoryMarshal.Cast<byte, float>(snapshot.Bytes).CopyTo(destination);
        }
        finally
        {
            snapshot.Release();
        }
    }

    /// <summary>Applies one update with the optimizer and publishes version + 1.</summary>
    public void Apply(ReadOnlySpan<float> gradient)
    {
        if (ClipNorm is float maxNorm)
        {
            // The rule owns the gradient buffer: clip a copy.
            if (_clipped.Length != gradient.Length)
            {
                _clipped = new float[gradient.Length];
            }
            gradient.CopyTo(_clipped);
            GradientClipping.ClipByGlobalNorm(_clipped, maxNorm);
            gradient = _clipped;
        }
        _optimizer.Step(_weights, gradient);
        var next = Rent();
        MemoryMarshal.AsBytes(_weights.AsSpan()).CopyTo(next.Bytes);
        next.MarkAllReady();
        Publish(next);
    }

    /// <summary>Starts version + 1, to be updated chunk by chunk; pulls for it may start now.</summary>
    public void BeginUpdate()
    {
        if (_building is not null)
        {
            throw new InvalidOperationException($"version {_building.Version} is already being built");
        }
        if (ClipNorm is not null)
        {
            throw new InvalidOperationException("a clipped update needs the whole gradient: use Apply");
        }
        _optimizer.BeginStep();
        var next = Rent();
        next.BeginFilling();
        lock (_snapshotLock)
        {
            next.Version = _current.Version + 1;
            _building = next;
        }
    }

    /// <summary>
    /// Updates chunk <paramref name="index"/> of the version being built from its aggregated
    /// gradient and writes it into that version's bytes. The caller marks it ready when it may be sent.
    /// </summary>
    public void ApplyChunk(int index, ReadOnlySpan<float> gradient)
    {
        var building = _building ?? throw new InvalidOperationException("ApplyChunk needs BeginUpdate first");
        var (offset, length) = Chunk(index);
        var weights = _weights.AsSpan(offset, length);
        _optimizer.StepSlice(offset, weights, gradient);
        MemoryMarshal.AsBytes(weights).CopyTo(building.Bytes.AsSpan(offset * sizeof(float)));
    }

    /// <summary>Chunk <paramref name="index"/> of the version being built may be sent.</summary>
    public void MarkReady(int index) => (_building ?? throw new InvalidOperationException("MarkReady needs BeginUpdate first")).MarkReady(index);

    /// <summary>Publishes the version being built (every chunk applied) and returns it.</summary>
    public WeightSnapshot EndUpdate()
    {
        var building = _building ?? throw new InvalidOperationException("EndUpdate needs BeginUpdate first");
        Publish(building);
        return building;
    }

    /// <summary>The run ended while a version was being built: pulls waiting for its chunks are released.</summary>
    public void AbandonUpdate() => _building?.Abandon();

    private WeightSnapshot NewSnapshot() => new(this, _weights.Length, ChunkCount);

    private WeightSnapshot Rent()
    {
        WeightSnapshot next;
        lock (_snapshotLock)
        {
            next = _free.Count > 0 ? _free.Pop() : NewSnapshot();
        }
        // The store's own reference, handed to _current on publication.
        next.AddReference();
        return next;
    }

    private void Publish(WeightSnapshot next)
    {
        WeightSnapshot previous;
        lock (_snapshotLock)
        {
            next.Version = _current.Version + 1;
            previous = _current;
            Volatile.Write(ref _current, next);
            if (_building == next)
            {
                _building = null;
            }
        }
        previous.Release();
    }

    internal void Recycle(WeightSnapshot snapshot)
    {
        lock (_snapshotLock)
        {
            if (snapshot != _current && snapshot != _building)
            {
                _free.Push(snapshot);
            }
        }
    }
}
