using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Cluster.Models;
using Cluster.Optim;

namespace Cluster.Checkpoints;

/// <summary>
/// Saves and loads models as safetensors files, so that other tools (Python's safetensors, PyTorch)
/// can read Cluster's checkpoints. A file is an 8-byte little-endian header length N, N bytes of
/// UTF-8 JSON padded with spaces so that the data starts at a multiple of 8 bytes, then the data:
/// the model's tensors as little-endian float32, back to back in the order of
/// <see cref="Sequential.SavedTensors"/> (parameters, then state such as batch norm's running statistics). The JSON maps each tensor name (<c>0.weight</c>, ...) to
/// its dtype (<c>F32</c>), shape and data offsets, and <c>__metadata__</c> holds string pairs: the
/// model spec, the format version and whatever the caller adds (epoch, accuracy, ...).
/// A checkpoint to resume training from also holds the optimizer's state: after the model's
/// tensors, one tensor per state buffer and parameter, named <c>optimizer.0.weight.exp_avg</c>
/// (the parameter's name, then PyTorch's name for the buffer) and shaped as the parameter, with the
/// optimizer's name and step count in the metadata. A run with early stopping also keeps its best
/// weights so far there: <c>best.0.weight</c> and so on for each of the model's tensors, with the
/// best epoch and its validation accuracy in the metadata.
/// </summary>
public static partial class Checkpoint
{
    /// <summary>Metadata key of the model spec text (<see cref="ModelSpec.ToText"/>), from which <see cref="Load"/> rebuilds the model.</summary>
    public const string SpecKey = "cluster.spec";

    /// <summary>Metadata key of the checkpoint format version.</summary>
    public const string VersionKey = "cluster.version";

    /// <summary>The checkpoint format version this Cluster writes and reads.</summary>
    public const string FormatVersion = "1";

    /// <summary>Metadata key of the optimizer whose state the file holds, if it holds one.</summary>
    public const string OptimizerKey = "cluster.optimizer";

    /// <summary>Metadata key of that optimizer's step count.</summary>
    public const string OptimizerStepsKey = "cluster.optimizer.steps";

    /// <summary>The prefix of an optimizer state tensor's name.</summary>
    private const string OptimizerPrefix = "optimizer.";

    /// <summary>Metadata key of the epoch of the best weights a resumable early-stopping run holds.</summary>
    public const string BestEpochKey = "cluster.best.epoch";

    /// <summary>Metadata key of their validation accuracy (round-trip format).</summary>
    public const string BestAccuracyKey = "cluster.best.validation_accuracy";

    /// <summary>The prefix of a best-weights tensor's name.</summary>
    private const string BestPrefix = "best.";

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
    /// <param name="optimizer">
    /// The optimizer's state to store with the weights, so that training can resume from the file
    /// exactly; null for the model alone. Its buffers must be as long as the model's parameters.
    /// </param>
    /// <exception cref="CheckpointException">The file cannot be written; nothing is left behind and an existing file is unchanged.</exception>
    /// <param name="best">With early stopping, the best weights so far, stored beside the model's so that a resumed run keeps them; null for none.</param>
    public static void Save(string path, Sequential model, IReadOnlyDictionary<string, string>? metadata = null, OptimizerState? optimizer = null, BestWeights? best = null) =>
        Save(path, model, metadata, beforeReplace: null, optimizer, best);

    /// <summary>
    /// <see cref="Save(string, Sequential, IReadOnlyDictionary{string, string}?, OptimizerState?)"/>, calling
    /// <paramref name="beforeReplace"/> with the complete temporary file just before it replaces
    /// <paramref name="path"/>, so that tests can simulate a failure at the last moment.
    /// </summary>
    internal static void Save(string path, Sequential model, IReadOnlyDictionary<string, string>? metadata, Action<string>? beforeReplace, OptimizerState? optimizer = null, BestWeights? best = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(model);
        var buffers = OptimizerBuffers(model, optimizer);
        if (best is not null && best.Saved.Length != model.SavedLength)
        {
            throw new ArgumentException($"the best weights hold {best.Saved.Length} values; the model saves {model.SavedLength}", nameof(best));
        }
        byte[] header = BuildHeader(model, metadata, optimizer, buffers, best);

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
                PreallocationSize = LengthPrefixSize + header.Length + (long)sizeof(float) * (model.SavedLength + (long)buffers.Count * model.ParameterCount + (best is null ? 0 : model.SavedLength)),
            }))
            {
                Span<byte> prefix = stackalloc byte[LengthPrefixSize];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                stream.Write(prefix);
                stream.Write(header);
                WriteFloats(stream, model.Parameters);
                WriteFloats(stream, model.State);
                foreach (var (_, values) in buffers)
                {
                    WriteFloats(stream, values);
                }
                if (best is not null)
                {
                    WriteFloats(stream, best.Saved);
                }
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

    /// <summary>The optimizer's buffers in the order the file stores them, checked against the model's size.</summary>
    private static List<(string Name, float[] Values)> OptimizerBuffers(Sequential model, OptimizerState? optimizer)
    {
        if (optimizer is null)
        {
            return [];
        }
        var unknown = optimizer.Buffers.Keys.Where(k => !OptimizerState.BufferNames.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            throw new ArgumentException($"optimizer state buffer '{unknown[0]}' is not one of {string.Join(", ", OptimizerState.BufferNames)}", nameof(optimizer));
        }
        var buffers = OptimizerState.BufferNames.Where(optimizer.Buffers.ContainsKey).Select(name => (name, optimizer.Buffers[name])).ToList();
        foreach (var (name, values) in buffers)
        {
            if (values.Length != model.ParameterCount)
            {
                throw new ArgumentException($"optimizer state buffer '{name}' holds {values.Length} values; the model has {model.ParameterCount} parameters", nameof(optimizer));
            }
        }
        return buffers;
    }

    /// <summary>
    /// The tensors of <paramref name="buffer"/>, one per parameter, named
    /// <c>optimizer.{parameter}.{buffer}</c>, with offsets into the layout of
    /// <see cref="Sequential.SavedTensors"/> followed by the buffers in <paramref name="bufferIndex"/> order.
    /// </summary>
    private static IEnumerable<NamedParameter> OptimizerTensors(Sequential model, string buffer, int bufferIndex) =>
        model.NamedParameters.Select(p => p with
        {
            Name = $"{OptimizerPrefix}{p.Name}.{buffer}",
            Offset = model.SavedLength + bufferIndex * model.ParameterCount + p.Offset,
        });

    /// <summary>
    /// The best weights' tensors, <c>best.{tensor}</c> for each of the model's, placed (for reading)
    /// after the model's tensors and every optimizer buffer.
    /// </summary>
    private static IEnumerable<NamedParameter> BestTensors(Sequential model) =>
        model.SavedTensors.Select(p => p with
        {
            Name = BestPrefix + p.Name,
            Offset = model.SavedLength + OptimizerState.BufferNames.Count * model.ParameterCount + p.Offset,
        });

    /// <summary>The JSON header: metadata first, then one entry per tensor, padded with spaces to a multiple of 8 bytes.</summary>
    private static byte[] BuildHeader(Sequential model, IReadOnlyDictionary<string, string>? metadata, OptimizerState? optimizer, List<(string Name, float[] Values)> buffers, BestWeights? best)
    {
        var buffer = new ArrayBufferWriter<byte>();
        // Relaxed escaping keeps the spec readable in the file ('+', '<', non-ASCII); it is still plain JSON.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteStartObject(MetadataKey);
            json.WriteString(SpecKey, model.Spec.ToText());
            json.WriteString(VersionKey, FormatVersion);
            if (optimizer is not null)
            {
                json.WriteString(OptimizerKey, optimizer.Optimizer);
                json.WriteString(OptimizerStepsKey, optimizer.Steps.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            if (best is not null)
            {
                json.WriteString(BestEpochKey, best.Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture));
                json.WriteString(BestAccuracyKey, best.ValidationAccuracy.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
            }
            if (metadata is not null)
            {
                foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    if (key is SpecKey or VersionKey or OptimizerKey or OptimizerStepsKey or BestEpochKey or BestAccuracyKey)
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
            var tensors = model.SavedTensors.Concat(buffers.SelectMany((b, i) => OptimizerTensors(model, b.Name, i))).Concat(best is null ? [] : BestTensors(model));
            foreach (var parameter in tensors)
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
