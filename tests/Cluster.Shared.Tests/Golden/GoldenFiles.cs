using System.Collections.Concurrent;
using System.Text.Json;

namespace Cluster.Tests.Golden;

/// <summary>
/// Reads the golden files that tests/golden/generate.py writes with PyTorch. They are embedded in
/// the test assembly as <c>Golden.FAMILY.json</c>, so the tests need neither Python nor a path.
/// </summary>
internal static class GoldenFiles
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    private static readonly ConcurrentDictionary<string, object> Loaded = new();

    /// <summary>The cases of <paramref name="family"/> (the file name without <c>.json</c>).</summary>
    public static IReadOnlyList<TCase> Cases<TCase>(string family) =>
        ((GoldenFile<TCase>)Loaded.GetOrAdd(family, _ => Read<TCase>(family))).Cases;

    /// <summary>The case named <paramref name="name"/> in <paramref name="family"/>.</summary>
    public static TCase Case<TCase>(string family, string name, Func<TCase, string> nameOf) =>
        Cases<TCase>(family).Single(c => nameOf(c) == name);

    /// <summary>Case names of a family, as theory data: one test per case, shown by name.</summary>
    public static TheoryData<string> Names<TCase>(string family, Func<TCase, string> nameOf)
    {
        var data = new TheoryData<string>();
        foreach (var c in Cases<TCase>(family))
        {
            data.Add(nameOf(c));
        }
        return data;
    }

    private static GoldenFile<TCase> Read<TCase>(string family)
    {
        string resource = $"Golden.{family}.json";
        using var stream = typeof(GoldenFiles).Assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"golden file {resource} is not embedded in the test assembly; run tests/golden/generate.py");
        var file = JsonSerializer.Deserialize<GoldenFile<TCase>>(stream, Json)
            ?? throw new InvalidOperationException($"golden file {resource} is empty");
        Assert.NotEmpty(file.Cases);
        return file;
    }
}
