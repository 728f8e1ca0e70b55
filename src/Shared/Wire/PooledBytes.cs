using System.Buffers;

namespace Cluster.Wire;

/// <summary>
/// A chunk's payload copied off the wire into a buffer rented from the shared array pool, so that
/// receiving a chunk allocates no array: a fresh 256 KiB array per chunk lands on the large object
/// heap, costs page faults to touch and gen2 collections to reclaim. The message that holds it owns
/// it and gives it back once, when disposed.
/// </summary>
internal struct PooledBytes
{
    private byte[]? _array;
    private int _length;

    /// <summary>The bytes (empty once returned).</summary>
    public readonly ReadOnlySpan<byte> Span => _array is null ? default : _array.AsSpan(0, _length);

    /// <summary>Copies <paramref name="source"/> into a rented buffer, giving back the one held before, if any.</summary>
    public void CopyFrom(ReadOnlySequence<byte> source)
    {
        Return();
        if (source.Length == 0)
        {
            return;
        }
        _array = ArrayPool<byte>.Shared.Rent((int)source.Length);
        _length = (int)source.Length;
        source.CopyTo(_array);
    }

    /// <summary>Gives the buffer back to the pool.</summary>
    public void Return()
    {
        if (_array is not null)
        {
            ArrayPool<byte>.Shared.Return(_array);
            _array = null;
            _length = 0;
        }
    }
}
