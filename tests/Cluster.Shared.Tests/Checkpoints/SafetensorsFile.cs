using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace Cluster.Tests.Checkpoints;

/// <summary>
/// A safetensors file taken apart independently of the code under test: the length prefix, the
/// header JSON and the data, so tests can check the layout and build corrupt variants.
/// </summary>
internal sealed class SafetensorsFile
{
    private SafetensorsFile(ulong headerLength, string headerText, byte[] data)
    {
        HeaderLength = headerLength;
        HeaderText = headerText;
        Data = data;
    }

    /// <summary>N, the header length the file's first 8 bytes give.</summary>
    public ulong HeaderLength { get; }

    /// <summary>The header bytes as text, padding included.</summary>
    public string HeaderText { get; }

    /// <summary>Everything after the header.</summary>
    public byte[] Data { get; }

    /// <summary>The header as a mutable JSON object.</summary>
    public JsonObject Header => JsonNode.Parse(HeaderText)!.AsObject();

    public static SafetensorsFile Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return new SafetensorsFile(n, Encoding.UTF8.GetString(bytes, 8, checked((int)n)), bytes[(8 + (int)n)..]);
    }

    /// <summary>Writes a file with the given header text (padded to a multiple of 8 with spaces) and data.</summary>
    public static void Write(string path, string headerText, byte[] data)
    {
        byte[] header = Encoding.UTF8.GetBytes(headerText);
        int padded = (header.Length + 7) / 8 * 8;
        var bytes = new byte[8 + padded + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        header.CopyTo(bytes, 8);
        bytes.AsSpan(8 + header.Length, padded - header.Length).Fill((byte)' ');
        data.CopyTo(bytes, 8 + padded);
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>Writes a copy of this file with its header changed by <paramref name="edit"/>.</summary>
    public void WriteEdited(string path, Action<JsonObject> edit)
    {
        var header = Header;
        edit(header);
        Write(path, header.ToJsonString(), Data);
    }
}
