using System.Runtime.InteropServices;
using Cluster.Optim;

namespace Cluster.ParameterServer;

/// <summary>
/// The authoritative weights, the optimizer that updates them and the version counter. Every
/// update publishes a new <see cref="WeightSnapshot"/>; the weights are never visible half-updated.
/// Not thread-safe on its own: the consistency rule serialises calls to <see cref="Apply"/>.
/// </summary>
public sealed class ParameterStore
{
    private readonly float[] _weights;
    private readonly Optimizer _optimizer;
    private readonly Stack<WeightSnapshot> _free = new();
    private readonly object _snapshotLock = new();
    private WeightSnapshot _current;
    private float[] _clipped = [];

    /// <summary>Starts from <paramref name="initial"/> weights at version 0.</summary>
    public ParameterStore(ReadOnlySpan<float> initial, Optimizer optimizer)
    {
        _weights = initial.ToArray();
        _optimizer = optimizer;
        _current = new WeightSnapshot(this, _weights.Length);
        MemoryMarshal.AsBytes(_weights.AsSpan()).CopyTo(_current.Bytes);
        _current.AddReference();
    }

    /// <summary>Number of parameters.</summary>
    public int Size => _weights.Length;

    /// <summary>The latest published version (the number of updates applied).</summary>
    public long Version => Volatile.Read(ref _current).Version;

    /// <summary>When set, each aggregated gradient is scaled down to this global L2 norm before the update (as <c>train --clip-norm</c>).</summary>
    public float? ClipNorm { get; init; }

    /// <summary>The optimizer (its learning rate may be changed between updates).</summary>
    public Optimizer Optimizer => _optimizer;

    /// <summary>The latest snapshot, with a reference the caller must <see cref="WeightSnapshot.Release"/>.</summary>
    public WeightSnapshot Acquire()
    {
        lock (_snapshotLock)
        {
            _current.AddReference();
            return _current;
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
        WeightSnapshot next;
        lock (_snapshotLock)
        {
            next = _free.Count > 0 ? _free.Pop() : new WeightSnapshot(this, _weights.Length);
        }
        MemoryMarshal.AsBytes(_weights.AsSpan()).CopyTo(next.Bytes);
        next.AddReference();
        WeightSnapshot previous;
        lock (_snapshotLock)
        {
            next.Version = _current.Version + 1;
            previous = _current;
            Volatile.Write(ref _current, next);
        }
        previous.Release();
    }

    internal void Recycle(WeightSnapshot snapshot)
    {
        lock (_snapshotLock)
        {
            if (snapshot != _current)
            {
                _free.Push(snapshot);
            }
        }
    }
}
