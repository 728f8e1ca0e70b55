using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Cluster.Checkpoints;
using Cluster.Models;

namespace Cluster.Tests.Checkpoints;

public sealed class CheckpointRoundTripTests : IDisposable
{
    private static readonly string[] LeNetTensors =
        ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight", "9.bias"];

    private readonly ScratchDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData("lenet")]
    [InlineData("mlp")]
    public void Load_returns_the_same_parameters_and_predictions(string preset)
    {
        var model = CheckpointModels.Create(preset, seed: 42);
        string path = _directory.File(preset + ".safetensors");

        Checkpoint.Save(path, model);
        LoadedCheckpoint loaded = Checkpoint.Load(path);

        Assert.Equal(model.Spec.ToText(), loaded.Model.Spec.ToText());
        Assert.Equal(CheckpointModels.Bits(model.Parameters), CheckpointModels.Bits(loaded.Model.Parameters));
        var batch = CheckpointModels.RandomBatch(model, batch: 5, seed: 7);
        float[] expected = model.Forward(batch, training: false).Span.ToArray();
        float[] actual = loaded.Model.Forward(batch, training: false).Span.ToArray();
        Assert.Equal(CheckpointModels.Bits(expected), CheckpointModels.Bits(actual));
    }

    [Theory]
    [InlineData("lenet")]
    [InlineData("mlp")]
    public void LoadInto_overwrites_every_parameter_of_a_model_of_the_same_spec(string preset)
    {
        var model = CheckpointModels.Create(preset, seed: 1);
        var other = CheckpointModels.Create(preset, seed: 2);
        string path = _directory.File("model.safetensors");
        Checkpoint.Save(path, model);

        Checkpoint.LoadInto(path, other);

        Assert.Equal(CheckpointModels.Bits(model.Parameters), CheckpointModels.Bits(other.Parameters));
    }

    [Fact]
    public void The_file_is_valid_safetensors()
    {
        var model = CheckpointModels.Create("lenet", seed: 3);
        string path = _directory.File("lenet.safetensors");

        Checkpoint.Save(path, model);

        byte[] bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, (8 + n) % 8);
        Assert.Equal(8 + (long)n + 4L * model.ParameterCount, bytes.LongLength);
        var file = SafetensorsFile.Read(path);
        string json = file.HeaderText.TrimEnd(' ');
        Assert.StartsWith("{", json, StringComparison.Ordinal);
        Assert.EndsWith("}", json, StringComparison.Ordinal);

        JsonObject header = file.Header;
        string[] names = header.Select(kv => kv.Key).Where(k => k != "__metadata__").ToArray();
        Assert.Equal(LeNetTensors, names);
        Assert.Equal(model.NamedParameters.Select(p => p.Name), names);
        long offset = 0;
        foreach (var parameter in model.NamedParameters)
        {
            var entry = header[parameter.Name]!.AsObject();
            Assert.Equal("F32", (string?)entry["dtype"]);
            Assert.Equal(parameter.Shape, entry["shape"]!.AsArray().Select(d => (int)d!).ToArray());
            long[] offsets = entry["data_offsets"]!.AsArray().Select(d => (long)d!).ToArray();
            Assert.Equal([offset, offset + 4L * parameter.Length], offsets);
            offset = offsets[1];
            for (int i = 0; i < parameter.Length; i++)
            {
                float stored = BinaryPrimitives.ReadSingleLittleEndian(file.Data.AsSpan((int)offsets[0] + 4 * i));
                Assert.Equal(BitConverter.SingleToInt32Bits(model.Parameters[parameter.Offset + i]), BitConverter.SingleToInt32Bits(stored));
            }
        }
        Assert.Equal(file.Data.LongLength, offset);

        var metadata = header["__metadata__"]!.AsObject();
        Assert.All(metadata, kv => Assert.Equal(System.Text.Json.JsonValueKind.String, kv.Value!.GetValueKind()));
        Assert.Equal(model.Spec.ToText(), (string?)metadata["cluster.spec"]);
        Assert.Equal("1", (string?)metadata["cluster.version"]);
    }

    [Fact]
    public void Metadata_round_trips()
    {
        var model = CheckpointModels.Create("mlp", seed: 4);
        string path = _directory.File("mlp.safetensors");
        var metadata = new Dictionary<string, string>
        {
            ["epoch"] = "7",
            ["accuracy"] = "0.9123",
            ["note"] = "héllo \"quoted\" \\ back\nline two + <tag> & 🚀",
            ["empty"] = "",
            // Cluster writes these itself, so a loaded checkpoint's metadata can be passed back as it is.
            ["cluster.spec"] = "not the spec",
            ["cluster.version"] = "99",
        };

        Checkpoint.Save(path, model, metadata);
        var loaded = Checkpoint.Load(path).Metadata;

        foreach (string key in new[] { "epoch", "accuracy", "note", "empty" })
        {
            Assert.Equal(metadata[key], loaded[key]);
        }
        Assert.Equal(model.Spec.ToText(), loaded[Checkpoint.SpecKey]);
        Assert.Equal(Checkpoint.FormatVersion, loaded[Checkpoint.VersionKey]);
        Assert.Equal(6, loaded.Count);

        string again = _directory.File("again.safetensors");
        Checkpoint.Save(again, model, loaded);
        Assert.Equal(loaded, Checkpoint.Load(again).Metadata);
    }

    [Fact]
    public void Saving_the_same_model_twice_gives_the_same_bytes()
    {
        var model = CheckpointModels.Create("mlp", seed: 5);
        var metadata = new Dictionary<string, string> { ["b"] = "2", ["a"] = "1" };

        Checkpoint.Save(_directory.File("one"), model, metadata);
        Checkpoint.Save(_directory.File("two"), model, metadata.Reverse().ToDictionary());

        Assert.Equal(File.ReadAllBytes(_directory.File("one")), File.ReadAllBytes(_directory.File("two")));
    }

    [Fact]
    public void LoadInto_reads_a_safetensors_file_from_another_tool()
    {
        // Other writers may sort tensors by name and write no metadata at all.
        var model = CheckpointModels.Create("mlp", seed: 6);
        var header = new JsonObject();
        var data = new List<byte>();
        foreach (var parameter in model.NamedParameters.OrderByDescending(p => p.Name, StringComparer.Ordinal))
        {
            header[parameter.Name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(parameter.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(data.Count, data.Count + 4 * parameter.Length),
            };
            foreach (float value in model.Parameters.AsSpan(parameter.Offset, parameter.Length))
            {
                var bytes = new byte[4];
                BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
                data.AddRange(bytes);
            }
        }
        string path = _directory.File("other.safetensors");
        SafetensorsFile.Write(path, header.ToJsonString(), data.ToArray());
        var target = new Sequential(ModelPresets.Resolve("mlp"));

        Checkpoint.LoadInto(path, target);

        Assert.Equal(CheckpointModels.Bits(model.Parameters), CheckpointModels.Bits(target.Parameters));
        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.Contains("cluster.spec", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadInto_a_model_of_another_spec_names_the_mismatched_tensor()
    {
        string path = _directory.File("mlp.safetensors");
        Checkpoint.Save(path, CheckpointModels.Create("mlp", seed: 8));
        var narrower = new Sequential(ModelSpec.Parse("input 1 28 28; flatten; dense 256; relu; dense 64; relu; dense 10"));
        var shorter = new Sequential(ModelSpec.Parse("input 1 28 28; flatten; dense 256; relu; dense 128"));
        float[] before = (float[])narrower.Parameters.Clone();

        var shape = Assert.Throws<CheckpointException>(() => Checkpoint.LoadInto(path, narrower));
        var unknown = Assert.Throws<CheckpointException>(() => Checkpoint.LoadInto(path, shorter));

        Assert.Contains(path, shape.Message, StringComparison.Ordinal);
        Assert.Contains("tensor '3.weight' has shape [128, 256]; the model expects [64, 256]", shape.Message, StringComparison.Ordinal);
        Assert.Contains(path, unknown.Message, StringComparison.Ordinal);
        Assert.Contains("unknown tensor '5.weight'", unknown.Message, StringComparison.Ordinal);
        Assert.Equal(CheckpointModels.Bits(before), CheckpointModels.Bits(narrower.Parameters));
    }
}
