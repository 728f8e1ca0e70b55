using System.Buffers.Binary;
using System.IO.Compression;

namespace Cluster.Data;

/// <summary>
/// Reads IDX files (LeCun's format: two zero bytes, an element type byte, a rank byte, one
/// big-endian int32 per dimension, then the elements), raw or gzip'd. Only unsigned-byte elements
/// (type 0x08) are supported: they are all that MNIST-style image sets use. Every defect is reported
/// as a <see cref="DataFormatException"/> naming the file.
/// </summary>
public static class IdxReader
{
    private const byte UnsignedByteType = 0x08;
    private const int MaxRank = 4;
    private const int TrailingProbeSize = 4096;

    /// <summary>
    /// Reads the IDX file at <paramref name="path"/>; it is decompressed when it starts with the gzip
    /// magic bytes 1f 8b, whatever its name.
    /// </summary>
    /// <exception cref="DataFormatException">The file does not exist, cannot be opened or is not a valid IDX file.</exception>
    public static IdxArray Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStream file;
        try
        {
            file = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.Read,
                Share = FileShare.Read,
                BufferSize = 1 << 16,
                Options = FileOptions.SequentialScan,
            });
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new DataFormatException($"IDX file '{path}' does not exist; expected a file at that path.", e);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new DataFormatException($"IDX file '{path}' cannot be opened: {OneLine(e.Message)}", e);
        }

        using (file)
        {
            return Read(file, path);
        }
    }

    /// <summary>
    /// Reads one IDX array from <paramref name="stream"/> (gzip'd or raw, told apart by the magic
    /// bytes 1f 8b) and checks that the stream ends right after it. The stream is left open.
    /// </summary>
    /// <param name="stream">The stream positioned at the start of the file; it need not be seekable.</param>
    /// <param name="sourceName">The file or resource name used in error messages.</param>
    /// <exception cref="DataFormatException">The stream is not a valid IDX file.</exception>
    public static IdxArray Read(Stream stream, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(sourceName);

        byte[] start = new byte[2];
        int startLength = stream.ReadAtLeast(start, start.Length, throwOnEndOfStream: false);
        if (startLength == 2 && start[0] == 0x1f && start[1] == 0x8b)
        {
            using var gzip = new GZipStream(new PrefixedStream(start, stream), CompressionMode.Decompress);
            try
            {
                return ReadRaw(gzip, sourceName, []);
            }
            catch (InvalidDataException e)
            {
                throw new DataFormatException(
                    $"IDX file '{sourceName}': broken gzip stream: the compressed data or its checksum is corrupt; expected an intact gzip file (gzip -t checks one).", e);
            }
        }
        return ReadRaw(stream, sourceName, start.AsSpan(0, startLength));
    }

    /// <summary>Parses an uncompressed IDX stream whose first bytes, <paramref name="consumed"/>, were already read.</summary>
    private static IdxArray ReadRaw(Stream stream, string sourceName, ReadOnlySpan<byte> consumed)
    {
        Span<byte> magic = stackalloc byte[4];
        consumed.CopyTo(magic);
        int magicLength = consumed.Length + stream.ReadAtLeast(magic[consumed.Length..], magic.Length - consumed.Length, throwOnEndOfStream: false);
        if (magicLength < magic.Length)
        {
            throw Error(sourceName, $"only {magicLength} bytes long; expected at least the 4-byte magic number 00 00 08 <rank>.");
        }
        if (magic[0] != 0 || magic[1] != 0)
        {
            throw Error(sourceName, $"bad magic number {Convert.ToHexString(magic[..2])} {Convert.ToHexString(magic[2..])}; expected 0000 then the type and rank bytes (is this an IDX file?).");
        }
        if (magic[2] != UnsignedByteType)
        {
            throw Error(sourceName, $"element type 0x{magic[2]:X2} ({TypeName(magic[2])}) is not supported; expected 0x08 (unsigned byte).");
        }
        int rank = magic[3];
        if (rank is 0 or > MaxRank)
        {
            throw Error(sourceName, $"rank {rank} is not supported; expected 1 to {MaxRank} dimensions.");
        }

        Span<byte> sizes = stackalloc byte[4 * MaxRank];
        sizes = sizes[..(4 * rank)];
        int sizesLength = stream.ReadAtLeast(sizes, sizes.Length, throwOnEndOfStream: false);
        if (sizesLength < sizes.Length)
        {
            throw Error(sourceName, $"header truncated: {sizesLength} of the {sizes.Length} bytes of dimension sizes present; expected {rank} big-endian int32 sizes after the magic number.");
        }

        int[] dimensions = new int[rank];
        long total = 1;
        for (int i = 0; i < rank; i++)
        {
            dimensions[i] = BinaryPrimitives.ReadInt32BigEndian(sizes[(4 * i)..]);
            if (dimensions[i] <= 0)
            {
                throw Error(sourceName, $"dimension {i} has size {dimensions[i]}; expected a positive size.");
            }
            total *= dimensions[i]; // at most (2^31)^4 would overflow, so stop as soon as it is too large
            if (total > Array.MaxLength)
            {
                throw Error(sourceName, $"dimensions {Describe(dimensions.AsSpan(0, i + 1))}... hold more than {Array.MaxLength} elements; expected an array that fits in memory.");
            }
        }

        byte[] data = new byte[total];
        int found = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        if (found < data.Length)
        {
            throw Error(sourceName, $"truncated: dimensions {Describe(dimensions)} need {data.Length} data bytes but only {found} are present.");
        }

        long trailing = CountRemaining(stream);
        if (trailing > 0)
        {
            throw Error(sourceName, $"{trailing} unexpected bytes after the {data.Length} data bytes of dimensions {Describe(dimensions)}; expected the file to end there.");
        }
        return new IdxArray(dimensions, data);
    }

    private static long CountRemaining(Stream stream)
    {
        Span<byte> probe = stackalloc byte[TrailingProbeSize];
        long count = 0;
        int n;
        while ((n = stream.Read(probe)) > 0)
        {
            count += n;
        }
        return count;
    }

    private static DataFormatException Error(string sourceName, string problem) =>
        new($"IDX file '{sourceName}': {problem}");

    private static string Describe(ReadOnlySpan<int> dimensions) => string.Join(" x ", dimensions.ToArray());

    private static string TypeName(byte type) => type switch
    {
        0x09 => "signed byte",
        0x0B => "16-bit integer",
        0x0C => "32-bit integer",
        0x0D => "32-bit float",
        0x0E => "64-bit float",
        _ => "unknown type",
    };

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
