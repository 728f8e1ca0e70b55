using System.Buffers.Binary;
using System.IO.Compression;

namespace Cluster.Tests;

/// <summary>Builds IDX files byte by byte, so that the reader is tested against the format, not against itself. Shared by every test project.</summary>
internal static class IdxFiles
{
    /// <summary>The bytes of an IDX file: 00 00 type rank, big-endian sizes, then <paramref name="data"/>.</summary>
    public static byte[] Build(byte type, int[] dimensions, byte[] data)
    {
        byte[] file = new byte[4 + (4 * dimensions.Length) + data.Length];
        file[2] = type;
        file[3] = (byte)dimensions.Length;
        for (int i = 0; i < dimensions.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(file.AsSpan(4 + (4 * i)), dimensions[i]);
        }
        data.CopyTo(file, 4 + (4 * dimensions.Length));
        return file;
    }

    /// <summary>An unsigned-byte IDX file.</summary>
    public static byte[] Build(int[] dimensions, byte[] data) => Build(0x08, dimensions, data);

    /// <summary><paramref name="count"/> bytes of a fixed pseudo-random pattern (poorly compressible, so gzip output is long).</summary>
    public static byte[] Pattern(int count, int salt = 0)
    {
        byte[] bytes = new byte[count];
        uint x = 2463534242u + (uint)salt;
        for (int i = 0; i < count; i++)
        {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            bytes[i] = (byte)x;
        }
        return bytes;
    }

    public static byte[] Gzip(byte[] raw)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            gzip.Write(raw);
        }
        return output.ToArray();
    }
}
