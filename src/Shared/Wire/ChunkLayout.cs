using Cluster.Models;

namespace Cluster.Wire;

/// <summary>
/// How a model's flat parameter vector is cut into the chunks that weights and gradients travel
/// in: buckets of whole parameter tensors of at most <c>chunk_floats</c> floats, as DDP buckets
/// gradients, built from the last tensor back (the order backward makes them final); a tensor
/// larger than that is cut into pieces of that size from its end. A chunk boundary therefore
/// falls between layers wherever it can, so the chunk holding the first layers, the last to be
/// final in backward and the first needed in forward, is no larger than they are. The server and
/// every worker build the same layout from the model spec and the chunk size.
/// </summary>
public sealed class ChunkLayout
{
    private readonly int[] _offsets;

    private ChunkLayout(int[] offsets) => _offsets = offsets;

    /// <summary>Chunks (at least 1).</summary>
    public int Count => _offsets.Length - 1;

    /// <summary>Floats in the whole vector.</summary>
    public int Size => _offsets[^1];

    /// <summary>The offset and length of chunk <paramref name="index"/>.</summary>
    public (int Offset, int Length) this[int index] => (_offsets[index], _offsets[index + 1] - _offsets[index]);

    /// <summary>Buckets of the tensors of <paramref name="parameters"/> (a vector of <paramref name="size"/> floats) of at most <paramref name="chunkFloats"/> floats.</summary>
    public static ChunkLayout ForTensors(IReadOnlyList<NamedParameter> parameters, int size, int chunkFloats)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkFloats, 1);
        var starts = new List<int> { size };
        int end = size;
        int t = parameters.Count - 1;
        while (end > 0)
        {
            int start = end;
            bool insideTensor = t >= 0 && end < parameters[t].Offset + parameters[t].Length;
            // Whole tensors while they fit (not after a cut: the rest of a cut tensor goes alone).
            while (!insideTensor && t >= 0 && end - parameters[t].Offset <= chunkFloats)
            {
                start = parameters[t].Offset;
                t--;
            }
            if (start == end)
            {
                // The next tensor alone is larger than a chunk: a piece of it, cut from its end.
                start = t >= 0 ? Math.Max(parameters[t].Offset, end - chunkFloats) : Math.Max(0, end - chunkFloats);
                if (t >= 0 && start == parameters[t].Offset)
                {
                    t--;
                }
            }
            starts.Add(start);
            end = start;
        }
        if (starts.Count == 1)
        {
            starts.Add(0);
        }
        starts.Reverse();
        return new ChunkLayout([.. starts]);
    }

    /// <summary>Equal chunks of <paramref name="chunkFloats"/> (the last one shorter), for a vector without tensor boundaries.</summary>
    public static ChunkLayout Uniform(int size, int chunkFloats)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkFloats, 1);
        int count = Math.Max(1, (size + chunkFloats - 1) / chunkFloats);
        var offsets = new int[count + 1];
        for (int i = 0; i < count; i++)
        {
            offsets[i] = i * chunkFloats;
        }
        offsets[count] = size;
        return new ChunkLayout(offsets);
    }

    /// <summary>The chunk holding float <paramref name="offset"/>.</summary>
    public int IndexOf(int offset)
    {
        int i = Array.BinarySearch(_offsets, offset);
        return Math.Min(Count - 1, i >= 0 ? i : ~i - 1);
    }
}
