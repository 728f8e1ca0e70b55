using System.Buffers;
using System.Runtime.InteropServices;

namespace Cluster.Wire;

/// <summary>
/// Where the pull being read wants its weight chunks: while a worker reads a pull it makes its sink
/// the current one for its own asynchronous flow, and the chunk parser, which runs inside that
/// read, copies each payload straight from the transport's buffers into the weights instead of
/// into a pooled buffer first. A chunk that does not fit (wrong count, index or length, or one
/// already received) is left to the ordinary path, which refuses it.
/// </summary>
public sealed class WeightSink(float[] weights, ChunkLayout chunks, bool[] received)
{
    private static readonly AsyncLocal<WeightSink?> CurrentSink = new();

    /// <summary>The sink of the pull being read in this asynchronous flow, if any.</summary>
    public static WeightSink? Current
    {
        get => CurrentSink.Value;
        set => CurrentSink.Value = value;
    }

    /// <summary>Copies chunk <paramref name="index"/> of <paramref name="count"/> into the weights; false when it does not fit.</summary>
    public bool TryWrite(int index, int count, ReadOnlySequence<byte> payload)
    {
        if (count != chunks.Count || index < 0 || index >= count || Volatile.Read(ref received[index]))
        {
            return false;
        }
        var (offset, length) = chunks[index];
        if (payload.Length != (long)length * sizeof(float))
        {
            return false;
        }
        payload.CopyTo(MemoryMarshal.AsBytes(weights.AsSpan(offset, length)));
        return true;
    }
}
