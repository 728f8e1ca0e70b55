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

    /// <summary>
    /// Copies wire bytes into floats and checks them in the same pass (one read of the bytes instead
    /// of a copy and a second read); returns false if any value is NaN or ±Inf. The byte count must
    /// be a whole number of floats.
    /// </summary>
    public static bool CopyFinite(ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        var source = MemoryMarshal.Cast<byte, float>(bytes);
        destination = destination[..source.Length];
        int i = 0;
        var bad = Vector256<float>.Zero;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= source.Length - 16; i += 16)
            {
                var a = Vector256.Create(source.Slice(i, 8));
                var b = Vector256.Create(source.Slice(i + 8, 8));
                a.CopyTo(destination.Slice(i, 8));
                b.CopyTo(destination.Slice(i + 8, 8));
                // x − x is 0 for finite x and NaN for NaN and ±Inf.
                bad |= ~Vector256.Equals(a - a, Vector256<float>.Zero) | ~Vector256.Equals(b - b, Vector256<float>.Zero);
            }
        }
        bool finite = bad == Vector256<float>.Zero;
        for (; i < source.Length; i++)
        {
            destination[i] = source[i];
            finite &= float.IsFinite(source[i]);
        }
        return finite;
    }

    /// <summary>
    /// <see cref="CopyFinite(ReadOnlySpan{byte}, Span{float})"/> for bytes in several segments, as
    /// a transport's buffers hold them: a float may straddle two segments.
    /// </summary>
    public static bool CopyFinite(in ReadOnlySequence<byte> bytes, Span<float> destination)
    {
        if (bytes.IsSingleSegment)
        {
            return CopyFinite(bytes.FirstSpan, destination);
        }
        bool finite = true;
        Span<byte> straddling = stackalloc byte[sizeof(float)];
        int carried = 0;
        int written = 0;
        foreach (var memory in bytes)
        {
            var segment = memory.Span;
            if (carried > 0)
            {
                int take = Math.Min(sizeof(float) - carried, segment.Length);
                segment[..take].CopyTo(straddling[carried..]);
                carried += take;
                segment = segment[take..];
                if (carried < sizeof(float))
                {
                    continue;
                }
                finite &= CopyFinite(straddling, destination.Slice(written++, 1));
                carried = 0;
            }
            int whole = segment.Length / sizeof(float) * sizeof(float);
            finite &= CopyFinite(segment[..whole], destination[written..]);
            written += whole / sizeof(float);
            segment[whole..].CopyTo(straddling);
            carried = segment.Length - whole;
        }
        return finite;
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
