using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Unicode;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Tensors;

namespace Cluster.Checkpoints;

/// <summary>Reading a safetensors file and checking it at every step: the length prefix, the JSON header, the metadata, each tensor's dtype, shape and place in the data section.</summary>
public static partial class Checkpoint
{
    /// <summary>The parsed header and where the data section is; the caller disposes <paramref name="Document"/>.</summary>
    private sealed record Header(JsonDocument Document, Dictionary<string, string> Metadata, long DataStart, long DataLength);

    /// <summary>Reads and checks the length prefix, the JSON and the metadata.</summary>
    private static Header ReadHeader(FileStream stream, string path)
    {
        long fileLength = stream.Length;
        if (fileLength == 0)
        {
            throw Error(path, "the file is empty; expected a safetensors checkpoint.");
        }
        if (fileLength < LengthPrefixSize)
        {
            throw Error(path, $"only {fileLength} bytes long; expected at least the {LengthPrefixSize}-byte header length of a safetensors file.");
        }
        Span<byte> prefix = stackalloc byte[LengthPrefixSize];
        ReadExactly(stream, path, prefix);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > MaxHeaderLength)
        {
            throw Error(path, $"header length {headerLength} bytes is absurd; expected at most {MaxHeaderLength} bytes (100 MB); is this a safetensors file?");
        }
        long available = fileLength - LengthPrefixSize;
        if ((long)headerLength > available)
        {
            throw Error(path, $"header length {headerLength} bytes runs past the end of the file, which has {available} bytes after the length prefix: the file is truncated.");
        }

        byte[] json = new byte[headerLength];
        ReadExactly(stream, path, json);
        if (!Utf8.IsValid(json))
        {
            throw Error(path, "header is not valid UTF-8; expected JSON text.");
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw Error(path, $"header is not valid JSON: {OneLine(e.Message)}", e);
        }
        try
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Error(path, $"header is a JSON {Kind(document.RootElement)}; expected an object mapping tensor names to their dtype, shape and data_offsets.");
            }
            var metadata = ReadMetadata(path, document.RootElement);
            if (metadata.TryGetValue(VersionKey, out string? version) && version != FormatVersion)
            {
                throw Error(path, $"metadata '{VersionKey}' is '{version}'; this Cluster reads checkpoint format version {FormatVersion}.");
            }
            long dataStart = LengthPrefixSize + (long)headerLength;
            return new Header(document, metadata, dataStart, fileLength - dataStart);
        }
        catch
        {
            document.Dispose();
            throw;
        }
    }

    /// <summary>The <c>__metadata__</c> string map, empty when the file has none.</summary>
    private static Dictionary<string, string> ReadMetadata(string path, JsonElement root)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        bool seen = false;
        foreach (var property in root.EnumerateObject())
        {
            if (property.Name != MetadataKey)
            {
                continue;
            }
            if (seen)
            {
                throw Error(path, $"header has '{MetadataKey}' twice; expected it at most once.");
            }
            seen = true;
            if (property.Value.ValueKind != JsonValueKind.Object)
            {
                throw Error(path, $"'{MetadataKey}' is a JSON {Kind(property.Value)}; expected an object of string values.");
            }
            foreach (var entry in property.Value.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                {
                    throw Error(path, $"metadata '{entry.Name}' is a JSON {Kind(entry.Value)}; expected a string.");
                }
                if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                {
                    throw Error(path, $"metadata '{entry.Name}' appears twice; expected each key once.");
                }
            }
        }
        return metadata;
    }

    /// <summary>Where one of the model's tensors lies in the data section, in bytes from its start.</summary>
    private readonly record struct TensorPlacement(NamedParameter Parameter, long Begin, long End);

    /// <summary>
    /// Checks every tensor entry against <paramref name="model"/> and the data section and returns
    /// the tensors in file order. Any order of the tensors is accepted (other writers sort them by
    /// name), but together they must cover the data section exactly, without gaps or overlaps.
    /// </summary>
    private static List<TensorPlacement> MatchTensors(string path, JsonElement root, Sequential model, long dataLength)
    {
        var tensors = model.SavedTensors;
        var expected = tensors.ToDictionary(p => p.Name, StringComparer.Ordinal);
        // An optimizer's state may follow the model's tensors: any of its buffers, for every parameter.
        // And an early-stopping run's best weights: a copy of every one of the model's tensors.
        var optional = OptimizerState.BufferNames.SelectMany((b, i) => OptimizerTensors(model, b, i)).Concat(BestTensors(model)).ToDictionary(p => p.Name, StringComparer.Ordinal);
        var found = new Dictionary<string, TensorPlacement>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            string name = property.Name;
            if (name == MetadataKey)
            {
                continue;
            }
            if (!expected.TryGetValue(name, out var parameter) && !optional.TryGetValue(name, out parameter))
            {
                throw Error(path, name.StartsWith(OptimizerPrefix, StringComparison.Ordinal)
                    ? $"unknown tensor '{name}': expected optimizer state as optimizer.PARAMETER.BUFFER, with a parameter of the model and a buffer among {string.Join(", ", OptimizerState.BufferNames)}."
                    : $"unknown tensor '{name}': the model has no such parameter; expected only {string.Join(", ", expected.Keys)}.");
            }
            if (found.ContainsKey(name))
            {
                throw Error(path, $"tensor '{name}' appears twice; expected each tensor once.");
            }
            found.Add(name, ReadEntry(path, name, property.Value, parameter));
        }
        foreach (var parameter in tensors)
        {
            if (!found.ContainsKey(parameter.Name))
            {
                throw Error(path, $"tensor '{parameter.Name}' is missing; expected all {tensors.Count} tensors of the model.");
            }
        }

        var layout = found.Values.OrderBy(t => t.Begin).ThenBy(t => t.End).ToList();
        long next = 0;
        string? previous = null;
        foreach (var tensor in layout)
        {
            string name = tensor.Parameter.Name;
            if (tensor.Begin < next)
            {
                throw Error(path, $"tensor '{name}' data_offsets [{tensor.Begin}, {tensor.End}] overlap tensor '{previous}', which ends at byte {next}; expected tensors back to back.");
            }
            if (tensor.Begin > next)
            {
                throw Error(path, previous is null
                    ? $"tensor '{name}' data_offsets [{tensor.Begin}, {tensor.End}] leave a gap: no tensor starts at byte 0 of the data."
                    : $"tensor '{name}' data_offsets [{tensor.Begin}, {tensor.End}] leave a gap after tensor '{previous}', which ends at byte {next}; expected tensors back to back.");
            }
            next = tensor.End;
            previous = name;
        }
        if (dataLength < next)
        {
            throw Error(path, $"data section is {dataLength} bytes but the tensors need {next}: the file is truncated.");
        }
        if (dataLength > next)
        {
            throw Error(path, $"data section is {dataLength} bytes but the tensors use only {next}; expected no bytes after the last tensor.");
        }
        return layout;
    }

    /// <summary>Checks one tensor entry's dtype, shape and data_offsets.</summary>
    private static TensorPlacement ReadEntry(string path, string name, JsonElement entry, NamedParameter parameter)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            throw Error(path, $"tensor '{name}' is a JSON {Kind(entry)}; expected an object with dtype, shape and data_offsets.");
        }

        var dtype = Field(path, name, entry, "dtype", JsonValueKind.String);
        if (dtype.GetString() != Float32)
        {
            throw Error(path, $"tensor '{name}' has dtype '{dtype.GetString()}'; Cluster reads only {Float32}.");
        }

        long[] shape = Integers(path, name, Field(path, name, entry, "shape", JsonValueKind.Array), "shape");
        if (!shape.SequenceEqual(parameter.Shape.Select(d => (long)d)))
        {
            throw Error(path, $"tensor '{name}' has shape [{string.Join(", ", shape)}]; the model expects {Tensor.ShapeText(parameter.Shape)}.");
        }

        long[] offsets = Integers(path, name, Field(path, name, entry, "data_offsets", JsonValueKind.Array), "data_offsets");
        if (offsets.Length != 2 || offsets[0] > offsets[1])
        {
            throw Error(path, $"tensor '{name}' has data_offsets [{string.Join(", ", offsets)}]; expected [begin, end] with begin <= end.");
        }
        long bytes = (long)sizeof(float) * parameter.Length;
        if (offsets[1] - offsets[0] != bytes)
        {
            throw Error(path, $"tensor '{name}' data_offsets [{offsets[0]}, {offsets[1]}] span {offsets[1] - offsets[0]} bytes; expected {bytes} for {Float32} shape {Tensor.ShapeText(parameter.Shape)}.");
        }
        return new TensorPlacement(parameter, offsets[0], offsets[1]);
    }

    private static JsonElement Field(string path, string name, JsonElement entry, string field, JsonValueKind kind)
    {
        if (!entry.TryGetProperty(field, out var value))
        {
            throw Error(path, $"tensor '{name}' has no '{field}'; expected dtype, shape and data_offsets.");
        }
        if (value.ValueKind != kind)
        {
            throw Error(path, $"tensor '{name}' field '{field}' is a JSON {Kind(value)}; expected a JSON {kind.ToString().ToLowerInvariant()}.");
        }
        return value;
    }

    /// <summary>The elements of a JSON array of non-negative integers.</summary>
    private static long[] Integers(string path, string name, JsonElement array, string field)
    {
        var values = new long[array.GetArrayLength()];
        int i = 0;
        foreach (var element in array.EnumerateArray())
        {
            if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out long value) || value < 0)
            {
                throw Error(path, $"tensor '{name}' field '{field}' holds {element.GetRawText()}; expected non-negative integers.");
            }
            values[i++] = value;
        }
        return values;
    }

    /// <summary>Reads each tensor of <paramref name="layout"/> into its place in <paramref name="destination"/>.</summary>
    private static void ReadTensors(FileStream stream, string path, long dataStart, List<TensorPlacement> layout, float[] destination)
    {
        foreach (var tensor in layout)
        {
            var values = destination.AsSpan(tensor.Parameter.Offset, tensor.Parameter.Length);
            stream.Position = dataStart + tensor.Begin;
            ReadExactly(stream, path, MemoryMarshal.AsBytes(values));
            if (!BitConverter.IsLittleEndian)
            {
                // The file is little-endian: swap each float's bytes in place.
                var bits = MemoryMarshal.Cast<float, uint>(values);
                BinaryPrimitives.ReverseEndianness(bits, bits);
            }
        }
    }

    /// <summary>Fills <paramref name="buffer"/>; the file shrinking under the reader or an I/O error becomes a <see cref="CheckpointException"/>.</summary>
    private static void ReadExactly(FileStream stream, string path, Span<byte> buffer)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw Error(path, "the file ended while being read: it is truncated or was changed while loading.", e);
        }
        catch (IOException e)
        {
            throw Error(path, $"reading failed: {OneLine(e.Message)}", e);
        }
    }

    private static string Kind(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => "null",
    };

    private static CheckpointException Error(string path, string problem) => new($"checkpoint '{path}': {problem}");

    private static CheckpointException Error(string path, string problem, Exception inner) => new($"checkpoint '{path}': {problem}", inner);
}
