using System.Text.Json;
using System.Text.Json.Serialization;
using Cluster.Wire;

namespace Cluster.ParameterServer;

/// <summary>One line of a cluster run's <c>--metrics</c> file: the fields of <c>train</c>'s plus the mode, the workers and their time split during the epoch (summed over the workers, in ms).</summary>
public sealed record ClusterEpochMetrics
{
    [JsonPropertyName("epoch")] public int Epoch { get; init; }
    [JsonPropertyName("train_loss")] public double TrainLoss { get; init; }
    [JsonPropertyName("test_loss")] public double TestLoss { get; init; }
    [JsonPropertyName("test_accuracy")] public double TestAccuracy { get; init; }
    [JsonPropertyName("images_per_sec")] public double ImagesPerSec { get; init; }
    [JsonPropertyName("seconds")] public double Seconds { get; init; }
    [JsonPropertyName("validation_accuracy"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? ValidationAccuracy { get; init; }
    [JsonPropertyName("validation_loss"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double? ValidationLoss { get; init; }
    [JsonPropertyName("mode")] public string Mode { get; init; } = "";
    [JsonPropertyName("workers")] public int Workers { get; init; }
    [JsonPropertyName("backup_workers")] public int BackupWorkers { get; init; }
    [JsonPropertyName("compute_ms")] public double ComputeMs { get; init; }
    [JsonPropertyName("push_ms")] public double PushMs { get; init; }
    [JsonPropertyName("pull_ms")] public double PullMs { get; init; }
    [JsonPropertyName("wait_ms")] public double WaitMs { get; init; }
    [JsonPropertyName("time_to_accuracy_seconds")] public double? TimeToAccuracySeconds { get; init; }
}

/// <summary>Writes a run's metrics file: one JSON object per evaluated epoch, written whole at the end (temp file, then rename).</summary>
public static class MetricsFile
{
    /// <summary>
    /// Writes <paramref name="path"/> from the final status, after the lines the file already held
    /// for epochs up to <paramref name="startEpoch"/> (those of the run a resumed one goes on with).
    /// </summary>
    public static void Write(string path, StatusReply status, ServerOptions options, double? timeToAccuracy, int startEpoch = 0)
    {
        // NOTE: each line's time split is the epoch's own, summed over the workers.
        var lines = status.Epochs.OrderBy(e => e.Epoch).Select(e => JsonSerializer.Serialize(new ClusterEpochMetrics
        {
            Epoch = e.Epoch,
            TrainLoss = e.TrainLoss,
            TestLoss = e.TestLoss,
            TestAccuracy = e.TestAccuracy,
            ImagesPerSec = e.ImagesPerSec,
            Seconds = e.Seconds,
            ValidationAccuracy = e.HasValidationAccuracy ? e.ValidationAccuracy : null,
            ValidationLoss = e.HasValidationLoss ? e.ValidationLoss : null,
            Mode = status.Mode,
            Workers = options.Workers,
            BackupWorkers = options.BackupWorkers,
            ComputeMs = e.Time?.ComputeMs ?? 0,
            PushMs = e.Time?.PushMs ?? 0,
            PullMs = e.Time?.PullMs ?? 0,
            WaitMs = e.Time?.WaitMs ?? 0,
            TimeToAccuracySeconds = timeToAccuracy,
        }));
        string temp = path + ".tmp-" + Environment.ProcessId;
        File.WriteAllLines(temp, Training.MetricsHistory.EarlierEpochs(path, startEpoch).Concat(lines));
        File.Move(temp, path, overwrite: true);
    }
}
