using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Cluster.Checkpoints;

namespace Cluster.Tests.Checkpoints;

public sealed class CheckpointCorruptionTests : IDisposable
{
    private readonly ScratchDirectory _directory = new();
    private readonly string _valid;

    public CheckpointCorruptionTests()
    {
        _valid = _directory.File("valid.safetensors");
        Checkpoint.Save(_valid, CheckpointModels.Create("lenet", seed: 11), new Dictionary<string, string> { ["epoch"] = "3" });
    }

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Truncated_data()
    {
        byte[] bytes = File.ReadAllBytes(_valid);
        string path = Write("truncated-data", bytes[..^100]);

        AssertFails(path, "data section", "truncated");
    }

    [Fact]
    public void Truncated_header()
    {
        byte[] bytes = File.ReadAllBytes(_valid);
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        string path = Write("truncated-header", bytes[..(8 + n / 2)]);

        AssertFails(path, $"header length {n}", "truncated");
    }

    [Theory]
    [InlineData(100L * 1024 * 1024 + 1)]
    [InlineData(long.MaxValue)]
    public void Absurd_header_length(long length)
    {
        byte[] bytes = File.ReadAllBytes(_valid);
        BinaryPrimitives.WriteInt64LittleEndian(bytes, length);
        string path = Write("absurd", bytes);

        AssertFails(path, $"header length {length} bytes is absurd");
    }

    [Fact]
    public void Header_length_of_all_ones()
    {
        string path = Write("ones", [.. Enumerable.Repeat((byte)0xff, 64)]);

        AssertFails(path, $"header length {ulong.MaxValue} bytes is absurd");
    }

    [Fact]
    public void Bad_json()
    {
        string path = _directory.File("bad-json");
        SafetensorsFile.Write(path, "{\"0.weight\": {\"dtype\": \"F32\", ", SafetensorsFile.Read(_valid).Data);

        AssertFails(path, "header is not valid JSON");
    }

    [Fact]
    public void Header_that_is_not_utf8()
    {
        byte[] bytes = File.ReadAllBytes(_valid);
        bytes[9] = 0xff;
        string path = Write("not-utf8", bytes);

        AssertFails(path, "UTF-8");
    }

    [Fact]
    public void Header_that_is_not_an_object()
    {
        string path = _directory.File("array");
        SafetensorsFile.Write(path, "[1, 2]", SafetensorsFile.Read(_valid).Data);

        AssertFails(path, "header is a JSON array");
    }

    [Fact]
    public void Wrong_dtype()
    {
        string path = Edit("dtype", h => h["0.weight"]!["dtype"] = "F16");

        AssertFails(path, "tensor '0.weight' has dtype 'F16'");
    }

    [Fact]
    public void Wrong_shape()
    {
        string path = Edit("shape", h => h["3.weight"]!["shape"] = new JsonArray(64, 32, 9));

        AssertFails(path, "tensor '3.weight' has shape [64, 32, 9]; the model expects [64, 32, 3, 3]");
    }

    [Fact]
    public void Shape_with_a_negative_dimension()
    {
        string path = Edit("negative", h => h["0.bias"]!["shape"] = new JsonArray(-32));

        AssertFails(path, "tensor '0.bias' field 'shape' holds -32");
    }

    [Fact]
    public void Missing_field()
    {
        string path = Edit("no-offsets", h => h["7.bias"]!.AsObject().Remove("data_offsets"));

        AssertFails(path, "tensor '7.bias' has no 'data_offsets'");
    }

    [Fact]
    public void Missing_tensor()
    {
        string path = Edit("missing", h => h.Remove("9.bias"));

        AssertFails(path, "tensor '9.bias' is missing");
    }

    [Fact]
    public void Extra_tensor()
    {
        string path = Edit("extra", h => h["10.weight"] = new JsonObject
        {
            ["dtype"] = "F32",
            ["shape"] = new JsonArray(1),
            ["data_offsets"] = new JsonArray(0, 4),
        });

        AssertFails(path, "unknown tensor '10.weight'");
    }

    [Fact]
    public void Tensor_listed_twice()
    {
        var file = SafetensorsFile.Read(_valid);
        string json = file.HeaderText.TrimEnd();
        int start = json.IndexOf("\"9.bias\"", StringComparison.Ordinal);
        string duplicate = json[start..^1];
        string path = _directory.File("twice");
        SafetensorsFile.Write(path, json[..^1] + "," + duplicate + "}", file.Data);

        AssertFails(path, "tensor '9.bias' appears twice");
    }

    [Fact]
    public void Overlapping_offsets()
    {
        string path = Edit("overlap", h => Shift(h["3.weight"]!, -4));

        AssertFails(path, "tensor '3.weight'", "overlap tensor '0.bias'");
    }

    [Fact]
    public void Offsets_that_leave_a_gap()
    {
        string path = Edit("gap", h => Shift(h["9.bias"]!, 4));

        AssertFails(path, "tensor '9.bias'", "gap");
    }

    [Fact]
    public void Offsets_that_disagree_with_the_shape()
    {
        string path = Edit("span", h => h["9.bias"]!["data_offsets"]![1] = (long)h["9.bias"]!["data_offsets"]![1]! - 4);

        AssertFails(path, "tensor '9.bias' data_offsets", "expected 40");
    }

    [Fact]
    public void Trailing_bytes_after_the_data()
    {
        string path = Write("trailing", [.. File.ReadAllBytes(_valid), 0, 0, 0, 0]);

        AssertFails(path, "no bytes after the last tensor");
    }

    [Fact]
    public void Metadata_value_that_is_not_a_string()
    {
        string path = Edit("metadata", h => h["__metadata__"]!["epoch"] = 3);

        AssertFails(path, "metadata 'epoch' is a JSON number");
    }

    [Fact]
    public void Unsupported_version()
    {
        string path = Edit("version", h => h["__metadata__"]!["cluster.version"] = "2");

        AssertFails(path, "'cluster.version' is '2'");
    }

    [Fact]
    public void Bad_spec_in_the_metadata()
    {
        string path = Edit("spec", h => h["__metadata__"]!["cluster.spec"] = "input 1 28 28\nwarp 9\n");

        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        AssertMessage(error, path, "metadata 'cluster.spec' is not a valid model spec", "warp");
    }

    [Theory]
    [InlineData("input 1 28 28\nflatten\ndense 20000\ndense 20000\n", "the model in metadata 'cluster.spec' needs")]
    [InlineData("input 1 28 28\nflatten\ndense 100000\ndense 100000\n", "metadata 'cluster.spec' describes a model too large")]
    public void Spec_of_a_model_larger_than_the_data_is_rejected_before_it_is_built(string spec, string fragment)
    {
        string path = Edit("large", h => h["__metadata__"]!["cluster.spec"] = spec);

        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        AssertMessage(error, path, fragment);
    }

    [Fact]
    public void File_missing()
    {
        string path = _directory.File("nothing-here.safetensors");

        AssertFails(path, "does not exist");
    }

    [Fact]
    public void Empty_file()
    {
        string path = Write("empty", []);

        AssertFails(path, "the file is empty");
    }

    [Fact]
    public void File_shorter_than_the_length_prefix()
    {
        string path = Write("short", [1, 2, 3]);

        AssertFails(path, "only 3 bytes long");
    }

    [Fact]
    public void Directory_instead_of_a_file()
    {
        string path = _directory.File("folder");
        Directory.CreateDirectory(path);

        AssertFails(path, "is a directory");
    }

    private string Write(string name, byte[] bytes)
    {
        string path = _directory.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private string Edit(string name, Action<JsonObject> edit)
    {
        string path = _directory.File(name);
        SafetensorsFile.Read(_valid).WriteEdited(path, edit);
        return path;
    }

    private static void Shift(JsonNode entry, long by)
    {
        var offsets = entry["data_offsets"]!.AsArray();
        entry["data_offsets"] = new JsonArray((long)offsets[0]! + by, (long)offsets[1]! + by);
    }

    /// <summary>Both Load and LoadInto reject <paramref name="path"/>, and LoadInto leaves the model unchanged.</summary>
    private static void AssertFails(string path, params string[] fragments)
    {
        AssertMessage(Assert.Throws<CheckpointException>(() => Checkpoint.Load(path)), path, fragments);

        var model = CheckpointModels.Create("lenet", seed: 12);
        int[] before = CheckpointModels.Bits(model.Parameters);
        AssertMessage(Assert.Throws<CheckpointException>(() => Checkpoint.LoadInto(path, model)), path, fragments);
        Assert.Equal(before, CheckpointModels.Bits(model.Parameters));
    }

    private static void AssertMessage(CheckpointException error, string path, params string[] fragments)
    {
        Assert.StartsWith($"checkpoint '{path}'", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
        foreach (string fragment in fragments)
        {
            Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
        }
    }
}
