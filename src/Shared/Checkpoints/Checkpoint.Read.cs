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
}
