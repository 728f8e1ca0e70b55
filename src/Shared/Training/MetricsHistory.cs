using System.Text.Json;

namespace Cluster.Training;

/// <summary>
/// What a resumed run keeps of its metrics file: the lines of the epochs its checkpoint had done,
/// so that the file, rewritten by the resumed run, still covers the whole run.
/// </summary>
public static class MetricsHistory
{
    /// <summary>
    /// The lines of the metrics file at <paramref name="path"/> whose <c>epoch</c> is at most
    /// <paramref name="throughEpoch"/>, in file order; none when the file does not exist. Lines that
    /// are not JSON objects with a whole <c>epoch</c> are left out.
    /// </summary>
    public static IReadOnlyList<string> EarlierEpochs(string? path, int throughEpoch)
    {
        if (path is null || throughEpoch < 1 || !File.Exists(path))
        {
            return [];
        }
        var kept = new List<string>();
        foreach (string line in File.ReadLines(path))
        {
            try
            {
                using var json = JsonDocument.Parse(line);
                if (json.RootElement.ValueKind == JsonValueKind.Object
                    && json.RootElement.TryGetProperty("epoch", out var epoch) && epoch.TryGetInt32(out int e) && e <= throughEpoch)
                {
                    kept.Add(line);
                }
            }
            catch (JsonException)
            {
                // Not a metrics line: a resumed run does not carry it over.
            }
        }
        return kept;
    }
}
