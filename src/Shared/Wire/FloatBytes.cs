using System.Buffers;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Cluster.Wire;

/// <summary>
/// Float arrays seen as the little-endian bytes the wire carries, without copying: a gradient or
/// weight buffer is wrapped as <see cref="ReadOnlyMemory{T}"/> of bytes and handed to protobuf's
/// unsafe wrap, so a chunk costs no copy on the sending side.
/// </summary>
public static class FloatBytes
{
    /// <summary>The bytes of <paramref name="values"/> as memory; wrap once per buffer and slice per chunk.</summary>
    public static ReadOnlyMemory<byte> AsBytes(float[] values) => new FloatArrayBytes(values).Memory;

    /// <summary>True when every value is finite (no NaN, no ±Inf).</summary>
    public static bool AllFinite(ReadOnlySpan<float> values)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var bad = Vector256<float>.Zero;
            for (; i <= values.Length - 8; i += 8)
            {
                var v = Vector256.Create(values.Slice(i, 8));
                // x − x is 0 for finite x and NaN for NaN and ±Inf.
                bad |= ~Vector256.Equals(v - v, Vector256<float>.Zero);
            }
            if (bad != Vector256<float>.Zero)
            {
                return false;
            }
        }
        for (; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Copies wire bytes into floats; the byte count must be a whole number of floats.</summary>
    public static void CopyTo(ReadOnlySpan<byte> bytes, Span<float> destination) =>
        MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination);

    private sealed class FloatArrayBytes(float[] values) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(values.AsSpan());

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            // The handle is freed when the caller disposes the MemoryHandle.
            var handle = GCHandle.Alloc(values, GCHandleType.Pinned);
            return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle);
        }

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
