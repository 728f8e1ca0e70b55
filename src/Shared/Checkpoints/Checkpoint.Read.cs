using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Unicode;
using Cluster.Models;
using Cluster.Optim;
using Cluster.Tensors;

namespace Cluster.Checkpoints;

public static partial class Checkpoint
{
    /// <summary>The largest header accepted, in bytes (100 MB): anything longer is a corrupt length prefix, not a header.</summary>
    private const long MaxHeaderLength = 100L * 1024 * 1024;

    /// <summary>
    /// Reads the checkpoint at <paramref name="path"/>: rebuilds the model from the spec stored in its
    /// metadata and loads every tensor. The whole file is validated first (length prefix, JSON, each
    /// tensor present exactly once as F32 with the model's shape, offsets contiguous and within the
    /// data, no unknown tensors, no missing or extra data).
    /// </summary>
    /// <exception cref="CheckpointException">The file is missing, unreadable or invalid; the message names the file and the bad tensor or field.</exception>
    public static LoadedCheckpoint Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = Open(path);
        var header = ReadHeader(stream, path);
        using var document = header.Document;
        if (!header.Metadata.TryGetValue(SpecKey, out string? specText))
        {
            throw Error(path, $"metadata has no '{SpecKey}', so the model cannot be rebuilt; expected a checkpoint written by Cluster (LoadInto loads a safetensors file into a model you build).");
        }
        Sequential model;
        try
        {
            var spec = ModelSpec.Parse(specText);
            // Check the size before building: a corrupt spec must not allocate a huge model.
            long needed = sizeof(float) * spec.CreateLayers().Sum(l => l.Parameters.Sum(p => (long)Tensor.Product(p.Shape)));
            if (needed > header.DataLength)
            {
                throw Error(path, $"data section is {header.DataLength} bytes but the model in metadata '{SpecKey}' needs {needed}: the file is truncated or the spec is wrong.");
            }
            model = new Sequential(spec);
        }
        catch (ModelSpecException e)
        {
            throw Error(path, $"metadata '{SpecKey}' is not a valid model spec: {OneLine(e.Message)}", e);
        }
        catch (OverflowException e)
        {
            throw Error(path, $"metadata '{SpecKey}' describes a model too large to load.", e);
        }
        var layout = MatchTensors(path, document.RootElement, model, header.DataLength);
        float[] saved = new float[model.SavedLength];
        ReadTensors(stream, path, header.DataStart, ModelPart(layout, model), saved);
        model.SetSaved(saved);
        return new LoadedCheckpoint(model, header.Metadata.AsReadOnly());
    }

    /// <summary>
    /// Loads the tensors of the checkpoint at <paramref name="path"/> into <paramref name="model"/>,
    /// which must have a tensor of the same name and shape for each one in the file and no others.
    /// The spec in the file's metadata is not needed, so a safetensors file written by another tool
    /// loads too. Validation is that of <see cref="Load"/>; on any error the model is left unchanged.
    /// </summary>
    /// <exception cref="CheckpointException">The file is missing, unreadable, invalid or does not match the model; the message names the tensor.</exception>
    public static void LoadInto(string path, Sequential model)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(model);
        var (stream, header, layout) = OpenFor(path, model);
        using var _ = stream;
        float[] values = new float[model.SavedLength];
        ReadTensors(stream, path, header.DataStart, ModelPart(layout, model), values);
        model.SetSaved(values);
    }

    /// <summary>
    /// Reads the optimizer state stored in the checkpoint at <paramref name="path"/> for
    /// <paramref name="model"/>'s parameters, or returns null when the file holds none (a model
    /// saved alone, or written by another tool). Validation is that of <see cref="LoadInto"/>, and
    /// each state buffer must be there for every parameter.
    /// </summary>
    /// <exception cref="CheckpointException">The file is missing, unreadable, invalid, does not match the model or holds an incomplete state; the message names the tensor or field.</exception>
    public static OptimizerState? LoadOptimizerState(string path, Sequential model)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(model);
        var (stream, header, layout) = OpenFor(path, model);
        using var _ = stream;
        var stored = layout.Where(t => t.Parameter.Offset >= model.SavedLength && !t.Parameter.Name.StartsWith(BestPrefix, StringComparison.Ordinal)).ToList();
        header.Metadata.TryGetValue(OptimizerKey, out string? name);
        if (stored.Count == 0 && name is null)
        {
            return null;
        }
        if (name is null)
        {
            throw Error(path, $"holds optimizer state tensors (such as '{stored[0].Parameter.Name}') but no metadata '{OptimizerKey}' naming the optimizer.");
        }
        if (!header.Metadata.TryGetValue(OptimizerStepsKey, out string? stepsText)
            || !long.TryParse(stepsText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long steps))
        {
            throw Error(path, $"metadata '{OptimizerStepsKey}' is {(stepsText is null ? "missing" : $"'{stepsText}'")}; expected the optimizer's step count, a non-negative integer.");
        }
        var buffers = new Dictionary<string, float[]>(StringComparer.Ordinal);
        for (int b = 0; b < OptimizerState.BufferNames.Count; b++)
        {
            string buffer = OptimizerState.BufferNames[b];
            var tensors = OptimizerTensors(model, buffer, b).ToList();
            int present = tensors.Count(t => stored.Any(s => s.Parameter.Name == t.Name));
            if (present == 0)
            {
                continue;
            }
            if (present < tensors.Count)
            {
                var missing = tensors.First(t => !stored.Any(s => s.Parameter.Name == t.Name));
                throw Error(path, $"optimizer state tensor '{missing.Name}' is missing; a state buffer is stored for every parameter or not at all.");
            }
            int start = model.SavedLength + b * model.ParameterCount;
            var values = new float[model.ParameterCount];
            var placed = stored.Where(s => s.Parameter.Offset >= start && s.Parameter.Offset < start + model.ParameterCount)
                .Select(s => s with { Parameter = s.Parameter with { Offset = s.Parameter.Offset - start } })
                .ToList();
            ReadTensors(stream, path, header.DataStart, placed, values);
            buffers.Add(buffer, values);
        }
        return new OptimizerState(name, steps, buffers);
    }

    /// <summary>
    /// Reads the best weights an early-stopping run stored in the checkpoint at <paramref name="path"/>
    /// for <paramref name="model"/>, or returns null when the file holds none. Validation is that of
    /// <see cref="LoadInto"/>, and every one of the model's tensors must have its copy.
    /// </summary>
    /// <exception cref="CheckpointException">The file is missing, unreadable, invalid, does not match the model or holds incomplete best weights.</exception>
    public static BestWeights? LoadBest(string path, Sequential model)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(model);
        var (stream, header, layout) = OpenFor(path, model);
        using var _ = stream;
        var stored = layout.Where(t => t.Parameter.Name.StartsWith(BestPrefix, StringComparison.Ordinal)).ToList();
        bool hasEpoch = header.Metadata.TryGetValue(BestEpochKey, out string? epochText);
        if (stored.Count == 0 && !hasEpoch)
        {
            return null;
        }
        if (!int.TryParse(epochText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int epoch) || epoch < 1)
        {
            throw Error(path, $"metadata '{BestEpochKey}' is {(epochText is null ? "missing" : $"'{epochText}'")}; expected the epoch of the best weights, 1 or more.");
        }
        if (!header.Metadata.TryGetValue(BestAccuracyKey, out string? accuracyText)
            || !double.TryParse(accuracyText, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double accuracy))
        {
            throw Error(path, $"metadata '{BestAccuracyKey}' is {(accuracyText is null ? "missing" : $"'{accuracyText}'")}; expected the best validation accuracy, a number.");
        }
        var missing = BestTensors(model).FirstOrDefault(t => !stored.Any(s => s.Parameter.Name == t.Name));
        if (missing is not null)
        {
            throw Error(path, $"best-weights tensor '{missing.Name}' is missing; the best weights are stored for every tensor of the model or not at all.");
        }
        int start = model.SavedLength + OptimizerState.BufferNames.Count * model.ParameterCount;
        var saved = new float[model.SavedLength];
        ReadTensors(stream, path, header.DataStart, [.. stored.Select(s => s with { Parameter = s.Parameter with { Offset = s.Parameter.Offset - start } })], saved);
        return new BestWeights(epoch, accuracy, saved);
    }

    /// <summary>The metadata of the checkpoint at <paramref name="path"/>, read from its header alone.</summary>
    /// <exception cref="CheckpointException">The file is missing, unreadable or its header is invalid.</exception>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = Open(path);
        var header = ReadHeader(stream, path);
        header.Document.Dispose();
        return header.Metadata.AsReadOnly();
    }

    /// <summary>The model's own tensors of a matched layout (not the optimizer's).</summary>
    private static List<TensorPlacement> ModelPart(List<TensorPlacement> layout, Sequential model) =>
        layout.Where(t => t.Parameter.Offset < model.SavedLength).ToList();

    private static FileStream Open(string path)
    {
        if (Directory.Exists(path))
        {
            throw new CheckpointException($"checkpoint '{path}' is a directory; expected a checkpoint file.");
        }
        try
        {
            return new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.Read,
                Share = FileShare.Read,
                BufferSize = 1 << 16,
            });
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointException($"checkpoint '{path}' does not exist; expected a checkpoint file at that path.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"checkpoint '{path}' cannot be opened: {OneLine(e.Message)}", e);
        }
    }

    /// <summary>The parsed header and where the data section is; the caller disposes <paramref name="Document"/>.</summary>
    /// <summary>
    /// Opens the checkpoint at <paramref name="path"/> for reading into <paramref name="model"/>:
    /// the open file (the caller disposes it), its header, and its tensors matched against the
    /// model's (<see cref="MatchTensors"/>).
    /// </summary>
    private static (FileStream Stream, Header Header, List<TensorPlacement> Layout) OpenFor(string path, Sequential model)
    {
        var stream = Open(path);
        try
        {
            var header = ReadHeader(stream, path);
            using var document = header.Document;
            return (stream, header, MatchTensors(path, document.RootElement, model, header.DataLength));
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

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
