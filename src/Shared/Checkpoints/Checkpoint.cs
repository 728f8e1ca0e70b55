using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Cluster.Models;

namespace Cluster.Checkpoints;

/// <summary>
/// Saves and loads models as safetensors files, so that other tools (Python's safetensors, PyTorch)
/// can read Cluster's checkpoints. A file is an 8-byte little-endian header length N, N bytes of
/// UTF-8 JSON padded with spaces so that the data starts at a multiple of 8 bytes, then the data:
/// the model's tensors as little-endian float32, back to back in the order of
/// <see cref="Sequential.SavedTensors"/> (parameters, then state such as batch norm's running statistics). The JSON maps each tensor name (<c>0.weight</c>, ...) to
/// its dtype (<c>F32</c>), shape and data offsets, and <c>__metadata__</c> holds string pairs: the
/// model spec, the format version and whatever the caller adds (epoch, accuracy, ...).
/// </summary>
public static partial class Checkpoint
{
    /// <summary>Metadata key of the model spec text (<see cref="ModelSpec.ToText"/>), from which <see cref="Load"/> rebuilds the model.</summary>
    public const string SpecKey = "cluster.spec";

    /// <summary>Metadata key of the checkpoint format version.</summary>
    public const string VersionKey = "cluster.version";

    /// <summary>The checkpoint format version this Cluster writes and reads.</summary>
    public const string FormatVersion = "1";

    private const string MetadataKey = "__metadata__";
    private const string Float32 = "F32";
    private const int LengthPrefixSize = sizeof(ulong);
    private const int DataAlignment = 8;
    private const int ChunkFloats = 16 * 1024;

    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="path"/> atomically: the checkpoint goes to a
    /// temporary file in the same directory, is flushed to disk and then moved over
    /// <paramref name="path"/>, so a crash never leaves a half-written checkpoint and an existing file
    /// is replaced only by a complete one. The directory must exist.
    /// </summary>
    /// <param name="path">The checkpoint file; replaced when it exists.</param>
    /// <param name="model">The model whose spec and parameters are written.</param>
    /// <param name="metadata">
    /// Extra string pairs to store, such as the epoch or the accuracy. Values given for
    /// <see cref="SpecKey"/> and <see cref="VersionKey"/> are replaced by the model's spec and
    /// <see cref="FormatVersion"/>, so the metadata of a loaded checkpoint can be passed back as it is.
    /// </param>
    /// <exception cref="CheckpointException">The file cannot be written; nothing is left behind and an existing file is unchanged.</exception>
    public static void Save(string path, Sequential model, IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, model, metadata, beforeReplace: null);

    /// <summary>
    /// <see cref="Save(string, Sequential, IReadOnlyDictionary{string, string}?)"/>, calling
    /// <paramref name="beforeReplace"/> with the complete temporary file just before it replaces
    /// <paramref name="path"/>, so that tests can simulate a failure at the last moment.
    /// </summary>
    internal static void Save(string path, Sequential model, IReadOnlyDictionary<string, string>? metadata, Action<string>? beforeReplace)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(model);
        byte[] header = BuildHeader(model, metadata);

        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath) ?? fullPath;
        if (!Directory.Exists(directory))
        {
            throw new CheckpointException($"checkpoint '{path}' cannot be written: directory '{directory}' does not exist; create it first.");
        }
        if (Directory.Exists(fullPath))
        {
            throw new CheckpointException($"checkpoint '{path}' cannot be written: that path is a directory; expected a file name.");
        }

        // A hidden, unique name in the same directory: File.Move within one file system is an atomic rename.
        string temp = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
                BufferSize = 1 << 16,
                PreallocationSize = LengthPrefixSize + header.Length + (long)sizeof(float) * model.SavedLength,
            }))
            {
                Span<byte> prefix = stackalloc byte[LengthPrefixSize];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                stream.Write(prefix);
                stream.Write(header);
                WriteFloats(stream, model.Parameters);
                WriteFloats(stream, model.State);
                stream.Flush(flushToDisk: true);
            }
            beforeReplace?.Invoke(temp);
            File.Move(temp, fullPath, overwrite: true);
        }
        catch (Exception e)
        {
            TryDelete(temp);
            if (e is IOException or UnauthorizedAccessException)
            {
                throw new CheckpointException($"checkpoint '{path}' cannot be written: {OneLine(e.Message)}", e);
            }
            throw;
        }
    }

    /// <summary>The JSON header: metadata first, then one entry per tensor, padded with spaces to a multiple of 8 bytes.</summary>
    private static byte[] BuildHeader(Sequential model, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        // Relaxed escaping keeps the spec readable in the file ('+', '<', non-ASCII); it is still plain JSON.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteStartObject(MetadataKey);
            json.WriteString(SpecKey, model.Spec.ToText());
            json.WriteString(VersionKey, FormatVersion);
            if (metadata is not null)
            {
                foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    if (key is SpecKey or VersionKey)
                    {
                        continue;
                    }
                    if (value is null)
                    {
                        throw new ArgumentException($"metadata '{key}' has no value; checkpoint metadata values are strings", nameof(metadata));
                    }
                    json.WriteString(key, value);
                }
            }
            json.WriteEndObject();

            ulong offset = 0;
            foreach (var parameter in model.SavedTensors)
            {
                ulong end = offset + sizeof(float) * (ulong)parameter.Length;
                json.WriteStartObject(parameter.Name);
                json.WriteString("dtype", Float32);
                json.WriteStartArray("shape");
                foreach (int dimension in parameter.Shape)
                {
                    json.WriteNumberValue(dimension);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(end);
                json.WriteEndArray();
                json.WriteEndObject();
                offset = end;
            }
            json.WriteEndObject();
        }

        // 8 + N is a multiple of 8 exactly when N is.
        int padded = (buffer.WrittenCount + DataAlignment - 1) / DataAlignment * DataAlignment;
        byte[] header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    /// <summary>Writes <paramref name="values"/> as little-endian float32, whatever the machine's byte order.</summary>
    private static void WriteFloats(Stream stream, ReadOnlySpan<float> values)
    {
        if (BitConverter.IsLittleEndian)
        {
            stream.Write(MemoryMarshal.AsBytes(values));
            return;
        }
        byte[] chunk = new byte[sizeof(float) * ChunkFloats];
        while (!values.IsEmpty)
        {
            int count = Math.Min(values.Length, ChunkFloats);
            for (int i = 0; i < count; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(chunk.AsSpan(sizeof(float) * i), values[i]);
            }
            stream.Write(chunk, 0, sizeof(float) * count);
            values = values[count..];
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the original error is the one worth reporting.
        }
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();
}
