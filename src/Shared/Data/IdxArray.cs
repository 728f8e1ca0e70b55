namespace Cluster.Data;

/// <summary>
/// An array read from an IDX file (LeCun's format, used by MNIST and Fashion-MNIST): its
/// dimensions, outermost first, and its unsigned-byte elements in row-major order.
/// </summary>
public sealed class IdxArray
{
    internal IdxArray(int[] dimensions, byte[] data)
    {
        Dimensions = dimensions;
        Data = data;
    }

    /// <summary>The size of each dimension, outermost first (for images: count, rows, columns).</summary>
    public int[] Dimensions { get; }

    /// <summary>The elements in row-major order; its length is the product of <see cref="Dimensions"/>.</summary>
    public byte[] Data { get; }
}
